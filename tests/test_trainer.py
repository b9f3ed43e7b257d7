"""The trainer: exact resumption, Ctrl-C, atomic checkpoints, non-finite losses, logs, the data stream."""

import json
import signal

import pytest
import torch
from torchvision.transforms import v2

from maskformer import MaskFormerConfig
from maskformer.recipes import DataConfig, SolverConfig, TrainConfig
from maskformer.checkpoint import atomic_save
from maskformer.data.stream import StepBatchSampler
from maskformer.trainer import NonFiniteLossError, Trainer
from synthetic import TwoSegments


def tiny_config(tmp_path, max_iters=6, **solver):
    model = MaskFormerConfig.tiny(num_classes=3, backbone="resnet", dec_layers=2, num_queries=8)
    # dropout on: resuming must restore the random state too, not only the weights
    solver = {"batch_size": 4, "lr": 1e-3, "max_iters": max_iters, "warmup_iters": 2, "warmup_factor": 0.1,
              "precision": "fp32", **solver}
    return TrainConfig(model=model, data=DataConfig(dataset="shapes", num_workers=0, test_short_edge=32,
                                                    test_max_size=32),
                       solver=SolverConfig(**solver), pretrained_backbone=False, output_dir=str(tmp_path),
                       eval_period=0, checkpoint_period=100, log_period=2, seed=3, device="cpu")


def make_trainer(cfg, callbacks=None, train=None):
    train = train if train is not None else TwoSegments(n=10, transforms=v2.RandomHorizontalFlip())
    return Trainer(cfg, train_dataset=train, val_dataset=TwoSegments(n=4, seed=9), progress=False,
                   callbacks=callbacks)


def record_losses(store):
    return lambda trainer, step, record: store.append((step, record["loss"]))


def test_resume_after_ctrl_c_continues_exactly(tmp_path):
    # An uninterrupted run of 6 steps ...
    full = []
    t = make_trainer(tiny_config(tmp_path / "full"), [record_losses(full)])
    t.train(evaluate=False)
    weights_full = {k: v.clone() for k, v in t.model.state_dict().items()}

    # ... against a run stopped by Ctrl-C after step 3 and resumed in a fresh trainer.
    def ctrl_c_at_3(trainer, step, record):
        if step == 3:
            signal.raise_signal(signal.SIGINT)

    first = []
    before = signal.getsignal(signal.SIGINT)  # the default handler, or SIG_IGN in a process started in the background
    t1 = make_trainer(tiny_config(tmp_path / "cut"), [record_losses(first), ctrl_c_at_3])
    with pytest.raises(KeyboardInterrupt):
        t1.train(evaluate=False)
    assert t1.last_checkpoint().name == "step_0000003.pt"
    assert signal.getsignal(signal.SIGINT) is before  # handler restored

    torch.manual_seed(12345)  # whatever the global state is now, resuming restores the saved one
    second = []
    t2 = make_trainer(tiny_config(tmp_path / "cut"), [record_losses(second)])
    assert t2.resume()
    assert t2.step == 3
    t2.train(evaluate=False)
    assert first == full[:3]
    assert second == full[3:]  # bit-identical losses after resuming
    for k, v in t2.model.state_dict().items():
        torch.testing.assert_close(v, weights_full[k], rtol=0, atol=0, msg=k)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    t = make_trainer(tiny_config(tmp_path, max_iters=2))
    t.train(evaluate=False)
    good = t.last_checkpoint()
    assert good.name == "step_0000002.pt"

    def crash_mid_write(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    t.step = 3
    monkeypatch.setattr(torch, "save", crash_mid_write)
    with pytest.raises(OSError, match="disk full"):
        t.save_checkpoint()
    monkeypatch.undo()
    assert t.last_checkpoint() == good  # the pointer still names the complete file
    assert not (t.checkpoint_dir / "step_0000003.pt").exists()
    assert [p.name for p in t.checkpoint_dir.iterdir() if p.name.startswith(".")] == []  # no temp left
    assert torch.load(good, weights_only=True)["step"] == 2


def test_atomic_save_replaces_whole_files(tmp_path):
    atomic_save({"a": torch.ones(2)}, tmp_path / "x.pt")
    atomic_save({"a": torch.zeros(3)}, tmp_path / "x.pt")
    assert torch.load(tmp_path / "x.pt", weights_only=True)["a"].shape == (3,)


def test_non_finite_loss_stops_with_the_step(tmp_path):
    data = TwoSegments(n=8, nan_at=5)
    t = make_trainer(tiny_config(tmp_path, max_iters=4), train=data)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    seen = []
    t.callbacks.append(record_losses(seen))
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at step (\d+)") as err:
        t.train(evaluate=False)
    step = len(seen) + 1
    assert f"at step {step} (" in str(err.value)
    assert "no checkpoint was written yet" in str(err.value)  # the run has not reached checkpoint_period
    assert "two-segments-5" in str(err.value)  # names the batch
    assert t.step == step - 1  # that step did not update the weights
    if step == 1:
        for k, v in t.model.state_dict().items():
            torch.testing.assert_close(v, before[k], rtol=0, atol=0)


def test_outputs_metrics_curves_and_model(tmp_path):
    from maskformer.hub import from_pretrained
    from maskformer.plotting import read_metrics

    t = make_trainer(tiny_config(tmp_path, max_iters=4))
    results = t.train(evaluate=True)
    assert 0.0 <= results["mIoU"] <= 1.0
    records = read_metrics(tmp_path / "metrics.jsonl")
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == [2, 4]
    assert all({"lr", "loss_ce", "loss_mask", "loss_dice", "grad_norm", "images_per_s"} <= set(r)
               for r in records if "loss" in r)
    assert [r["step"] for r in records if "mIoU" in r] == [4]
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "config.json").read_text())["solver"]["max_iters"] == 4
    loaded = from_pretrained(tmp_path / "model").eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).pred_logits, t.model.eval()(x).pred_logits)


def test_time_per_step_leaves_evaluation_and_checkpoints_out(tmp_path, monkeypatch):
    # A clock that moves 1 s per training step and 100 s per evaluation or checkpoint (every 2 steps):
    # time_per_step must be the steps' own time, exactly 1 s, in every logged window.
    import types

    import maskformer.trainer as trainer_module
    from maskformer.plotting import read_metrics

    clock = [0.0]
    monkeypatch.setattr(trainer_module, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    cfg = tiny_config(tmp_path, max_iters=6)
    cfg.eval_period, cfg.checkpoint_period = 2, 2
    t = make_trainer(cfg)

    def advance(seconds, fn):
        def wrapped(*args, **kwargs):
            clock[0] += seconds
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(t, "train_step", advance(1.0, t.train_step))
    monkeypatch.setattr(t, "evaluate", advance(100.0, lambda: {"mIoU": 0.0}))
    monkeypatch.setattr(t, "save_checkpoint", advance(100.0, t.save_checkpoint))
    t.train(evaluate=True)
    windows = [r["time_per_step"] for r in read_metrics(tmp_path / "metrics.jsonl") if "time_per_step" in r]
    assert windows == [1.0, 1.0, 1.0]


def test_the_start_line_names_mask2former(tmp_path, capsys):
    cfg = tiny_config(tmp_path, max_iters=2)
    Trainer(cfg, train_dataset=TwoSegments(n=4), val_dataset=TwoSegments(n=2, seed=9), progress=False).train(False)
    assert "training MaskFormer (" in capsys.readouterr().out
    switches = dict(masked_attention=True, multi_scale_features=True, cross_attention_first=True,
                    learnable_query_features=True)
    for on, name in [({"masked_attention": True}, "MaskFormer with masked attention ("), (switches, "Mask2Former (")]:
        cfg.model = MaskFormerConfig.tiny(num_classes=3, backbone="resnet", dec_layers=2, num_queries=8, **on)
        cfg.output_dir = str(tmp_path / name[:5])
        Trainer(cfg, train_dataset=TwoSegments(n=4), val_dataset=TwoSegments(n=2, seed=9), progress=False).train(False)
        assert f"training {name}" in capsys.readouterr().out


def test_bf16_autocast_and_accumulation_run(tmp_path):
    losses = []
    t = make_trainer(tiny_config(tmp_path, max_iters=2, precision="bf16", grad_accum_steps=2),
                     [record_losses(losses)])
    t.train(evaluate=False)
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(v)) for _, v in losses)


def test_per_pixel_baseline_trains(tmp_path):
    cfg = tiny_config(tmp_path, max_iters=2)
    cfg.model.architecture = "per_pixel"
    losses = []
    make_trainer(cfg, [record_losses(losses)]).train(evaluate=False)
    assert len(losses) == 2


def test_step_sampler_splits_the_same_global_batch():
    """Processes x accumulation steps read disjoint parts of the very same global batch."""
    def keys(rank, world, accum, step=2):
        s = StepBatchSampler(10, batch_size=8, seed=1, start_step=step, max_steps=step + 1, rank=rank,
                             world_size=world, accum_steps=accum)
        return [k for micro in s for k in micro]

    single = keys(0, 1, 1)
    assert len(single) == 8
    assert sorted(keys(0, 2, 1) + keys(1, 2, 1)) == sorted(single)
    assert sorted(keys(0, 2, 2) + keys(1, 2, 2)) == sorted(single)
    assert keys(0, 1, 4) == single  # accumulation alone keeps the order
    # epochs are permutations: 10 images, 8 per step -> steps 0 and 1 cover every image once in 10 draws
    s = StepBatchSampler(10, batch_size=5, seed=1, max_steps=2)
    assert sorted(i for micro in s for i, _ in micro) == list(range(10))
    with pytest.raises(ValueError, match="divisible"):
        StepBatchSampler(10, batch_size=6, world_size=4)


def test_dataset_and_model_class_mismatch_is_named(tmp_path):
    cfg = tiny_config(tmp_path)
    cfg.model.num_classes = 5
    with pytest.raises(ValueError, match="3 classes but model.num_classes=5"):
        make_trainer(cfg)


def test_train_command_on_shapes(tmp_path, capsys):
    from maskformer.__main__ import main

    out = tmp_path / "run"
    args = ["train", "--output-dir", str(out), "--max-iters", "3", "--batch-size", "4", "--progress", "lines",
            "data.image_size=32", "data.num_train=8", "data.num_val=2", "data.test_short_edge=32",
            "data.test_max_size=32", "log_period=1", "model.dec_layers=1"]
    main(args)
    text = capsys.readouterr().out
    assert "step 3/3" in text and "mIoU" in text
    assert (out / "model" / "config.json").exists() and (out / "curves.png").exists()
    # --resume picks up the finished run and has nothing left to do but evaluate
    main(args + ["--resume"])
    assert "resumed from" in capsys.readouterr().out


def test_train_command_errors_are_messages(tmp_path):
    from maskformer.__main__ import main

    with pytest.raises(SystemExit, match="no config 'nope'"):
        main(["train", "--config", "nope"])
    with pytest.raises(SystemExit, match="override 'solver.lr' must look like"):
        main(["train", "solver.lr"])
    with pytest.raises(SystemExit, match="unknown solver fields"):
        main(["train", "solver.learning_rate=1"])


def test_train_command_on_ade20k_layout(tmp_path, capsys):
    """The ADE20K config trains from a folder in the official layout (a generated sample here)."""
    from maskformer.__main__ import main
    from maskformer.data import write_ade20k_sample

    root = write_ade20k_sample(tmp_path / "data", num_train=4, num_val=2, size=(48, 64))
    main(["train", "--config", "ade20k-150/maskformer_R50_bs16_160k", "--data-root", str(root), "--no-pretrained",
          "--output-dir", str(tmp_path / "run"), "--max-iters", "2", "--batch-size", "2", "--progress", "lines",
          "model.preset=tiny", "model.backbone=resnet", "model.num_classes=150", "data.crop_size=64",
          "data.num_workers=0", "data.test_short_edge=64", "log_period=1"])
    text = capsys.readouterr().out
    assert "on 4 images" in text and "step 2/2" in text and "mIoU" in text


def test_torchrun_two_processes(tmp_path):
    """`torchrun --nproc_per_node 2 -m maskformer train` runs (gloo on CPU) and logs once."""
    import subprocess
    import sys

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "maskformer", "train", "--output-dir", str(out), "--max-iters", "2", "--batch-size", "4",
           "--device", "cpu", "--progress", "lines", "data.image_size=32", "data.num_train=8", "data.num_val=2",
           "data.test_short_edge=32", "data.test_max_size=32", "log_period=1", "model.dec_layers=1"]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es)" in result.stdout and result.stdout.count("step 2/2") == 1  # rank 0 prints
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2]
    assert (out / "model" / "model.safetensors").exists()
