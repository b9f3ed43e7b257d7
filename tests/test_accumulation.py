"""Gradient accumulation equals the full batch: one optimiser step over micro-batches (and over
processes) gives the loss and gradients of one batch holding all of them.

The four images carry (1, 1, 6, 5) segments and (0, 24, 8, 40) ignored rows, so micro-batches
differ in their number of target masks, cross-entropy weight total and labelled pixels. The
equality holds because ``criterion.normalisers`` computes those divisors once over the whole
step and every micro-batch divides by them. Normalising each micro-batch by its own counts and
averaging the micro-batch losses (what the trainer did before) gave, measured on this data and
model: MaskFormer loss 9.4254 as one batch, 8.7476 as 2x2 and 8.7130 as 4x1, with gradients off by
64% (relative L2 norm); the per-pixel baseline 3.2679, 3.3060 and 3.3148.
"""

import contextlib

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from maskformer import MaskFormerConfig
from maskformer.builders import build_criterion, build_model
from maskformer.data import collate, make_sample
from maskformer.recipes import DataConfig, SolverConfig, TrainConfig
from maskformer.trainer import Trainer

SEGMENTS = (1, 1, 6, 5)
IGNORED_ROWS = (0, 24, 8, 40)
NUM_CLASSES = 4
ARCHITECTURES = ("maskformer", "per_pixel")


def config(architecture: str) -> MaskFormerConfig:
    # dropout off and the ResNet's frozen BatchNorm (the default): each image's outputs depend on that
    # image alone, so how the batch is split cannot change them.
    return MaskFormerConfig.tiny(num_classes=NUM_CLASSES, backbone="resnet", dropout=0.0, num_queries=8, dec_layers=2,
                                 architecture=architecture)


def sample(num_segments: int, ignored_rows: int, seed: int, size: int = 64) -> dict:
    """A [3, size, size] image of ``num_segments`` vertical bands, one segment each (class = band % 4),
    whose top ``ignored_rows`` rows are unlabelled (255)."""
    generator = torch.Generator().manual_seed(seed)
    instance = torch.zeros(size, size, dtype=torch.int64)
    bounds = torch.linspace(0, size, num_segments + 1).round().long().tolist()
    for k in range(num_segments):
        instance[:, bounds[k]:bounds[k + 1]] = k + 1
    semantic = (instance - 1) % NUM_CLASSES
    semantic[:ignored_rows], instance[:ignored_rows] = 255, 0
    colours = torch.randint(0, 256, (num_segments + 1, 3), generator=generator)
    image = colours[instance].permute(2, 0, 1)  # [3, H, W]
    image = (image + torch.randint(-20, 21, image.shape, generator=generator)).clamp(0, 255).to(torch.uint8)
    id_to_class = {k + 1: k % NUM_CLASSES for k in range(num_segments)}
    return make_sample(image, semantic, instance=instance, id_to_class=id_to_class, name=f"bands-{seed}")


def samples() -> list[dict]:
    return [sample(n, rows, seed) for seed, (n, rows) in enumerate(zip(SEGMENTS, IGNORED_ROWS))]


def micro_batches(images: list[dict], size: int) -> list[dict]:
    return [collate(images[i:i + size]) for i in range(0, len(images), size)]


def model_and_criterion(architecture: str):
    torch.manual_seed(0)
    cfg = config(architecture)
    return build_model(cfg).train(), build_criterion(cfg)


def accumulate(model, criterion, batches: list[dict], normalise_per_step: bool = True, no_sync=None):
    """One step's backward passes: returns the summed loss and the gradients {name: tensor}."""
    model.zero_grad(set_to_none=True)
    normalisers = criterion.normalisers(batches) if normalise_per_step else None
    total = 0.0
    for i, batch in enumerate(batches):
        sync = no_sync() if (no_sync is not None and i < len(batches) - 1) else contextlib.nullcontext()
        with sync:
            loss = criterion.total_loss(criterion.batch_losses(model(batch["images"]), batch, normalisers))
            loss.backward()
        total += loss.item()
    return total, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def assert_same_gradients(grads: dict, expected: dict) -> None:
    assert grads.keys() == expected.keys()
    scale = max(g.abs().max().item() for g in expected.values())
    for name, value in expected.items():
        # float32 sums in another order: relative 1e-5, and an absolute floor for near-zero entries
        torch.testing.assert_close(grads[name], value, rtol=1e-5, atol=1e-6 * scale, msg=name)


def test_the_micro_batches_really_differ():
    images = samples()
    assert [len(s["targets"]["labels"]) for s in images] == list(SEGMENTS)
    labelled = [int((s["semantic"] != 255).sum()) for s in images]
    assert len(set(labelled)) == len(labelled)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_one_batch_needs_no_normalisers(architecture):
    """With a single micro-batch, normalisers=None (the batch's own counts) is the same loss."""
    model, criterion = model_and_criterion(architecture)
    batch = collate(samples())
    outputs = model(batch["images"])
    by_batch = criterion.batch_losses(outputs, batch)
    by_step = criterion.batch_losses(outputs, batch, criterion.normalisers([batch]))
    assert by_batch.keys() == by_step.keys()
    for name, value in by_batch.items():
        torch.testing.assert_close(by_step[name], value, rtol=1e-6, atol=0, msg=name)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("micro_batch_size", [1, 2, 4])
def test_micro_batches_equal_the_full_batch(architecture, micro_batch_size):
    model, criterion = model_and_criterion(architecture)
    images = samples()
    full_loss, full_grads = accumulate(model, criterion, [collate(images)], normalise_per_step=False)
    loss, grads = accumulate(model, criterion, micro_batches(images, micro_batch_size))
    assert loss == pytest.approx(full_loss, rel=1e-5)
    assert_same_gradients(grads, full_grads)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_normalising_each_micro_batch_alone_is_not_the_full_batch(architecture):
    """The old recipe (each micro-batch its own divisors, losses averaged) differs on this data:
    the tests above are able to fail."""
    model, criterion = model_and_criterion(architecture)
    images = samples()
    full_loss, _ = accumulate(model, criterion, [collate(images)], normalise_per_step=False)
    per_micro_batch, _ = accumulate(model, criterion, micro_batches(images, 2), normalise_per_step=False)
    assert abs(per_micro_batch / 2 - full_loss) > 1e-3 * full_loss


def _worker(rank, world_size, tmp_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp_dir}/init", rank=rank, world_size=world_size)
    try:
        results = {}
        for architecture in ARCHITECTURES:  # one spawn for both: starting the processes is the slow part
            model, criterion = model_and_criterion(architecture)
            ddp = torch.nn.parallel.DistributedDataParallel(model)
            share = samples()[2 * rank:2 * rank + 2]  # rank 0: (1, 1) segments, rank 1: (6, 5)
            loss, grads = accumulate(ddp, criterion, micro_batches(share, 1), no_sync=ddp.no_sync)
            results[architecture] = {"loss": loss, "grads": {n.removeprefix("module."): g for n, g in grads.items()}}
        torch.save(results, f"{tmp_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_of_two_micro_batches_equal_one_batch(tmp_path):
    """DistributedDataParallel averages the gradients of the processes, whose normalisers are averaged
    too: 2 processes x 2 micro-batches of 1 image give the gradients of one process with batch 4."""
    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for architecture in ARCHITECTURES:
        model, criterion = model_and_criterion(architecture)
        full_loss, full_grads = accumulate(model, criterion, [collate(samples())], normalise_per_step=False)
        # each process's loss is its share of the step's loss times the world size (the trainer logs the mean)
        assert sum(r[architecture]["loss"] for r in ranks) / 2 == pytest.approx(full_loss, rel=1e-5), architecture
        for r in ranks:
            assert_same_gradients(r[architecture]["grads"], full_grads)


class Bands(torch.utils.data.Dataset):
    """The four test images as a dataset, for the trainer."""

    num_classes = NUM_CLASSES
    class_names = [f"class {c}" for c in range(NUM_CLASSES)]

    def __len__(self):
        return len(SEGMENTS)

    def __getitem__(self, index):
        return sample(SEGMENTS[index], IGNORED_ROWS[index], index)


LR = 1e-3


def train_one_step(output_dir, architecture: str, grad_accum_steps: int):
    solver = SolverConfig(batch_size=4, lr=LR, max_iters=1, precision="fp32", clip_grad_norm=0.01,
                          grad_accum_steps=grad_accum_steps)
    cfg = TrainConfig(model=config(architecture), data=DataConfig(dataset="shapes", num_workers=0), solver=solver,
                      pretrained_backbone=False, output_dir=str(output_dir), eval_period=0, checkpoint_period=0,
                      log_period=1, seed=5, device="cpu")
    records = []
    trainer = Trainer(cfg, train_dataset=Bands(), val_dataset=Bands(), progress=False,
                      callbacks=[lambda t, step, record: records.append(record)])
    initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train(evaluate=False)
    return records[0], trainer.model.state_dict(), initial


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_trainer_grad_accum_steps_change_nothing(tmp_path, architecture):
    """solver.grad_accum_steps 1, 2, 4 with batch 4: the same logged loss and gradient norm (before
    clipping), and the same weights after one step.

    AdamW's first step moves each weight by lr * g / (|g| + 1e-8): mostly lr * sign(g), so the weights
    alone would hardly see a wrongly scaled gradient; the loss and the norm do. Near |g| ~ 1e-8 (after
    clipping to 0.01, many entries) that division magnifies float32 rounding: measured up to 2e-6 = 2e-3 lr
    apart, hence the absolute tolerance of 1e-2 lr next to rtol 1e-5.
    """
    record, state, initial = train_one_step(tmp_path / "1", architecture, 1)
    for steps in (2, 4):
        other, other_state, _ = train_one_step(tmp_path / str(steps), architecture, steps)
        assert other["loss"] == pytest.approx(record["loss"], rel=1e-5), steps
        assert other["grad_norm"] == pytest.approx(record["grad_norm"], rel=1e-5), steps
        for name, value in state.items():
            torch.testing.assert_close(other_state[name], value, rtol=1e-5, atol=1e-2 * LR, msg=f"{name}, {steps}")
    # the step moved the weights by far more than the tolerance, so the comparison says something
    head = "class_embed.weight" if architecture == "maskformer" else "predictor.weight"
    assert (state[head] - initial[head]).abs().max() > 0.5 * LR
