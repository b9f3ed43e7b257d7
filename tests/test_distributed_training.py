"""Two processes (gloo, CPU) with DistributedDataParallel train exactly like one process on the
combined batch: same losses, same updated weights.

The images carry different numbers of segments, so each process's share of the batch has its own
number of target masks and its own cross-entropy weight total: the equality holds only because
both normalisers are averaged over the processes (``MaskFormerLoss._normalisers``).
"""

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from maskformer import MaskFormerConfig
from maskformer.data import Shapes
from maskformer.recipes import DataConfig, SolverConfig, TrainConfig
from maskformer.trainer import Trainer

STEPS = 3


def config(output_dir):
    # dropout off: each process draws its own dropout masks, which one process could not reproduce
    model = MaskFormerConfig.tiny(num_classes=4, backbone="resnet", dec_layers=2, num_queries=8, dropout=0.0)
    return TrainConfig(model=model, data=DataConfig(dataset="shapes", num_workers=0),
                       solver=SolverConfig(batch_size=4, lr=1e-3, max_iters=STEPS, precision="fp32",
                                           clip_grad_norm=0.01),
                       pretrained_backbone=False, output_dir=str(output_dir), eval_period=0, checkpoint_period=0,
                       log_period=1, seed=5, device="cpu")


def dataset():
    return Shapes(num_samples=12, image_size=32, num_classes=4, shapes_per_image=(1, 3), seed=2)


def run(output_dir):
    losses = []
    trainer = Trainer(config(output_dir), train_dataset=dataset(), val_dataset=dataset(), progress=False,
                      callbacks=[lambda t, step, record: losses.append(record["loss"])])
    initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train(evaluate=False)
    return losses, trainer.model.state_dict(), initial


def _worker(rank, world_size, tmp_dir):
    torch.set_num_threads(1)
    os.environ.update(WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", init_method=f"file://{tmp_dir}/init", rank=rank, world_size=world_size)
    try:
        losses, state, _ = run(f"{tmp_dir}/ddp")
        torch.save({"losses": losses, "state": state}, f"{tmp_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_equal_one_process_on_the_combined_batch(tmp_path):
    counts = [len(dataset()[i]["targets"]["labels"]) for i in range(12)]
    assert len(set(counts)) > 1  # the shares really differ in their number of masks

    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    losses, state, initial = run(tmp_path / "single")

    assert len(losses) == STEPS
    for r in ranks:
        torch.testing.assert_close(torch.tensor(r["losses"]), torch.tensor(losses), rtol=1e-5, atol=1e-6)
    for name, value in state.items():
        for r in ranks:
            torch.testing.assert_close(r["state"][name], value, rtol=1e-4, atol=1e-6, msg=name)
    # the weights did move, so the comparison says something
    assert not torch.allclose(state["class_embed.weight"], initial["class_embed.weight"], atol=1e-5)
