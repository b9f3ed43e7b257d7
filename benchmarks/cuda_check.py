"""The checks that need a GPU, in one command: run it on a CUDA machine.

    python benchmarks/cuda_check.py                     # every check, a few minutes on one GPU
    python benchmarks/cuda_check.py --device cpu --quick  # the same code paths on a CPU (a smoke test of this script)

Prints one line per check, ``PASS`` or ``FAIL`` with the numbers it measured, and exits with status 1
if any check failed.

1. ``parity``: our forward equals Hugging Face's on the device (fp32, TF32 off), Swin-T and ResNet-50
   presets with the same random weights, a batch of two 512x480 images (256x224 with ``--quick``).
2. ``train``: ``Trainer`` on the built-in Shapes data: on CUDA with bf16 autocast and a channels-last
   model and images; the loss stays finite and falls, and the run ends with an mIoU.
3. ``resume``: 6 steps in one go against 3 steps, Ctrl-C, a fresh trainer resuming, 3 more. On CPU the
   losses are bit-identical (``tests/test_trainer.py``); on CUDA some backward kernels (grid_sample's,
   scatter-adds) add in a varying order, so the check asks for agreement to 1e-3 and prints whether
   they were bit-identical.
4. ``torchrun``: ``torchrun --standalone --nproc_per_node N -m maskformer train`` with one process per
   GPU (nccl; ``--device cpu`` runs 2 gloo processes) finishes and prints mIoU.
5. ``speed`` (information, never fails): forward time of ours and Hugging Face's on the device.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # lets cuBLAS be deterministic (resume check)

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forward import build_hf, interleaved_times, median_ratio, run_hf, run_ours  # noqa: E402

from maskformer import from_transformers  # noqa: E402
from maskformer.recipes import load_config  # noqa: E402
from maskformer.trainer import Trainer  # noqa: E402

RESULTS: list[bool] = []


def report(name: str, ok: bool, detail: str) -> None:
    RESULTS.append(ok)
    print(f"{'PASS' if ok else 'FAIL'}  {name:<9} {detail}", flush=True)


def check_parity(device: torch.device, size: int) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for preset in ("swin_tiny", "resnet50"):
        hf = build_hf(preset).to(device)
        ours = from_transformers(hf).to(device)
        x = torch.randn(2, 3, size, size - 32, device=device)  # batch of 2, not square
        with torch.no_grad():
            ref, out = hf(pixel_values=x), ours(x)
        d_logits = (out.pred_logits - ref.class_queries_logits).abs().max().item()
        d_masks = (out.pred_masks - ref.masks_queries_logits).abs().max().item()
        scale = ref.masks_queries_logits.abs().max().item()
        # float rounding only: on CPU the largest difference is up to 2.5e-6 (Swin-T) and 1.1e-5
        # (ResNet-50) of the largest mask logit; allow 3e-5 of it, and 1e-4 at least
        tolerance = max(1e-4, 3e-5 * scale)
        ok = d_logits <= tolerance and d_masks <= tolerance
        report("parity", ok, f"{preset}: max |diff| pred_logits {d_logits:.1e}, pred_masks {d_masks:.1e} "
                             f"(masks up to {scale:.1f}; tolerance {tolerance:.1e})")
        del hf, ours


def shapes_config(device: str, out: Path, max_iters: int, **extra):
    overrides = [f"device={device}", f"output_dir={out}", f"solver.max_iters={max_iters}", "pretrained_backbone=false",
                 "data.num_workers=2"] + [f"{k}={v}" for k, v in extra.items()]
    return load_config("shapes/maskformer_tiny", overrides)


def check_train(device: str, out: Path, max_iters: int) -> None:
    losses = []
    trainer = Trainer(shapes_config(device, out, max_iters), progress=False,
                      callbacks=[lambda t, step, record: losses.append(record["loss"])])
    weight = trainer.model.pixel_decoder.mask_features.weight  # a 3x3 conv: its layout is unambiguous
    channels_last = weight.is_contiguous(memory_format=torch.channels_last)
    layout_ok = trainer.device.type != "cuda" or channels_last  # the trainer makes the model NHWC on CUDA only
    precision_ok = trainer.precision == ("bf16" if trainer.device.type == "cuda" else "fp32")
    start = time.perf_counter()
    results = trainer.train()
    seconds = time.perf_counter() - start
    k = max(1, len(losses) // 10)
    first, last = statistics.mean(losses[:k]), statistics.mean(losses[-k:])
    finite = all(math.isfinite(v) for v in losses)
    miou = results.get("mIoU")
    ok = finite and last < first and miou is not None and layout_ok and precision_ok
    report("train", ok, f"{len(losses)} steps on {trainer.device}, {trainer.precision}, channels-last weights "
                        f"{channels_last}; loss {first:.3f} -> {last:.3f}; mIoU {miou if miou is None else round(miou, 3)}; "
                        f"{seconds:.0f} s with evaluation")


def check_resume(device: str, out: Path) -> None:
    torch.use_deterministic_algorithms(True, warn_only=True)
    extra = {"solver.warmup_iters": 2, "checkpoint_period": 100, "eval_period": 0}

    def run(folder, callbacks, resume=False):
        trainer = Trainer(shapes_config(device, out / folder, 6, **extra), progress=False, callbacks=callbacks)
        if resume:
            assert trainer.resume(), "no checkpoint to resume from"
        trainer.train(evaluate=False)
        return trainer

    full, first, second = [], [], []
    run("full", [lambda t, step, r: full.append(r["loss"])])

    def ctrl_c_at_3(trainer, step, record):
        if step == 3:
            signal.raise_signal(signal.SIGINT)

    try:
        run("cut", [lambda t, step, r: first.append(r["loss"]), ctrl_c_at_3])
    except KeyboardInterrupt:
        pass
    run("cut", [lambda t, step, r: second.append(r["loss"])], resume=True)
    torch.use_deterministic_algorithms(False)
    resumed = first + second
    if len(resumed) != len(full):
        return report("resume", False, f"{len(first)} + {len(second)} steps against {len(full)}")
    diff = max(abs(a - b) for a, b in zip(full, resumed))
    report("resume", diff <= 1e-3 * max(abs(v) for v in full),
           f"losses after resuming vs uninterrupted: max |diff| {diff:.1e} "
           f"({'bit-identical' if diff == 0 else 'not bit-identical'}); {full[3:]} vs {second}")


def check_torchrun(device: str, out: Path, max_iters: int) -> None:
    nproc = torch.cuda.device_count() if device.startswith("cuda") else 2
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "maskformer", "train", "--device", device.split(":")[0], "--max-iters", str(max_iters),
           "--output-dir", str(out / "torchrun"), "--no-pretrained", "--progress", "lines"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    text = proc.stdout + proc.stderr
    ok = proc.returncode == 0 and "mIoU" in text
    line = next((ln for ln in text.splitlines() if "mIoU" in ln), text.strip().splitlines()[-1] if text.strip() else "")
    report("torchrun", ok, f"{nproc} process(es), rc {proc.returncode}: {line.strip()[:150]}")


def check_speed(device: torch.device, size: int, repeats: int, quick: bool) -> None:
    def timed(fn):  # wait for the GPU, so that each call's wall time covers its kernels
        def run(x):
            out = fn(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            return out
        return run

    for preset in ("swin_tiny", "resnet50"):
        hf = build_hf(preset).to(device)
        ours = from_transformers(hf).to(device)
        for batch, bf16 in ((1, False),) if quick else ((1, False), (8, False), (8, True)):
            x = torch.randn(batch, 3, size, size, device=device)
            fns = {"ours": timed(lambda v: run_ours(ours, v)), "hf": timed(lambda v: run_hf(hf, v))}
            with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                runs = interleaved_times(fns, x, repeats)
            t = {name: statistics.median(v) * 1e3 for name, v in runs.items()}
            print(f"info  speed     {preset} batch {batch} {'bf16' if bf16 else 'fp32'}: ours {t['ours']:.1f} ms, "
                  f"HF {t['hf']:.1f} ms, ratio {median_ratio(runs['ours'], runs['hf']):.2f}", flush=True)
        del hf, ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="small sizes and few steps (for trying the script on a CPU)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("cuda_check: no CUDA device here (torch.cuda.is_available() is False); "
                         "use --device cpu --quick to try the script on a CPU")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__} on {name}", flush=True)
    size = 256 if args.quick else 512
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        check_parity(device, size)
        check_train(args.device, out / "train", 60 if args.quick else 1000)
        check_resume(args.device, out / "resume")
        check_torchrun(args.device, out, 10 if args.quick else 200)
    check_speed(device, size, 3 if args.quick else 20, args.quick)
    print(f"{sum(RESULTS)} of {len(RESULTS)} checks passed", flush=True)
    sys.exit(0 if all(RESULTS) else 1)


if __name__ == "__main__":
    main()
