"""Forward-pass speed and memory: ours against Hugging Face transformers, same random weights.

    python benchmarks/forward.py                 # Swin-T and ResNet-50, 150 classes, 512x512, batch 1, eval
    python benchmarks/forward.py --repeats 25 --size 640
    python benchmarks/forward.py --presets mask2former_swin_tiny mask2former_resnet50   # against HF's Mask2Former

For each preset it builds a random ``transformers.MaskFormerForInstanceSegmentation`` (or
``Mask2FormerForUniversalSegmentation`` for the ``mask2former_*`` presets), copies its weights
into ours with ``maskformer.from_transformers``, checks that both give the same ``pred_logits`` /
``pred_masks``, and prints:

- the median forward time of each, measured interleaved (ours, HF, ours, HF, ...) in one process so
  that load on a shared machine hits both alike, and the ratio ours / HF: the median of the ratios of
  back-to-back pairs;
- the FLOPs each performs (``torch.utils.flop_counter``: matmuls, convs, attention) and the achieved
  GFLOP/s, next to the GFLOP/s of a plain 2048^3 fp32 matmul measured in the same run (the practical
  ceiling of the machine);
- peak memory: each model runs once more in a fresh subprocess; the peak resident set size (Linux
  ``VmHWM``, reset through ``/proc/self/clear_refs`` after the model is loaded) minus the size before
  the forward pass is the memory the forward pass needed.

Both sides do the same work: Hugging Face's default forward returns only the last decoder layer's
prediction, and so does ours in eval mode (``return_aux=False``); the ratio with ``return_aux=True``,
which also computes the earlier layers' predictions (what training needs for deep supervision), is
printed too. Hugging Face's Mask2Former computes every layer's full mask anyway (its masked attention
needs them), ours only the masks it returns.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

PRESETS = ("swin_tiny", "resnet50", "mask2former_swin_tiny", "mask2former_resnet50")


def build_hf(preset: str, num_labels: int = 150):
    if preset.startswith("mask2former_"):
        return build_hf_mask2former(preset, num_labels)
    from transformers import (DetrConfig, MaskFormerConfig, MaskFormerForInstanceSegmentation, MaskFormerSwinConfig,
                              ResNetConfig)
    from transformers.utils import logging

    logging.set_verbosity_error()
    stages = ["stage1", "stage2", "stage3", "stage4"]
    if preset == "swin_tiny":
        backbone = MaskFormerSwinConfig(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
                                        out_features=stages)
    else:
        backbone = ResNetConfig(embedding_size=64, hidden_sizes=[256, 512, 1024, 2048], depths=[3, 4, 6, 3],
                                layer_type="bottleneck", out_features=stages)
    config = MaskFormerConfig(backbone_config=backbone, decoder_config=DetrConfig(), num_labels=num_labels)
    torch.manual_seed(0)
    model = MaskFormerForInstanceSegmentation(config).eval()
    with torch.no_grad():  # HF starts some tensors at constants; perturb them so every weight matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return model


def build_hf_mask2former(preset: str, num_labels: int = 150):
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, ResNetConfig, SwinConfig
    from transformers.utils import logging

    logging.set_verbosity_error()
    stages = ["stage1", "stage2", "stage3", "stage4"]
    if preset == "mask2former_swin_tiny":
        backbone = SwinConfig(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
                              out_features=stages)
    else:
        backbone = ResNetConfig(embedding_size=64, hidden_sizes=[256, 512, 1024, 2048], depths=[3, 4, 6, 3],
                                layer_type="bottleneck", out_features=stages)
    config = Mask2FormerConfig(backbone_config=backbone, num_labels=num_labels)  # HF's defaults: 9 + 1 layers, ...
    torch.manual_seed(0)
    model = Mask2FormerForUniversalSegmentation(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
        # Masked attention thresholds mask logits at 0. At random init they are small (|logit| < 2), so a float
        # rounding difference of 1e-7 anywhere flips a pixel of some attention mask for about every other input,
        # and the outputs then differ by ~1e-3 in both directions. Logits 10x larger, as confident as a trained
        # model's, make that rare without changing the work done.
        model.model.transformer_module.decoder.mask_predictor.mask_embedder.layers[-1].layers[0].weight.mul_(10)
    return model


def run_ours(model, x, aux=False):
    return model(x, return_aux=aux)


def run_hf(model, x):
    return model(pixel_values=x)


def interleaved_times(fns: dict, x: torch.Tensor, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each function, called in turn (a, b, c, a, b, c, ...) ``repeats`` times."""
    times = {name: [] for name in fns}
    with torch.no_grad():
        for fn in fns.values():  # warm-up: oneDNN primitives, allocator
            fn(x)
        for _ in range(repeats):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn(x)
                times[name].append(time.perf_counter() - start)
    return times


def median_ratio(a: list[float], b: list[float]) -> float:
    """Median over repeats of a[i] / b[i]: each pair ran back to back, so a slow spell of the shared
    machine mostly hits both sides of a pair and cancels in their ratio."""
    return statistics.median(x / y for x, y in zip(a, b))


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        t.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(t) / 1e9


def count_flops(fn, x) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(x)
    return counter.get_total_flops()


def _status() -> dict[str, int]:
    text = Path("/proc/self/status").read_text()
    return {k: int(re.search(rf"{k}:\s+(\d+)", text).group(1)) * 1024 for k in ("VmRSS", "VmHWM")}


def child_peak_memory(which: str, checkpoint: str, size: int) -> None:
    """Runs in a fresh process: load one model, reset the peak counter, one forward, print the peak increase."""
    if which == "ours":
        from maskformer import MaskFormer

        model, fn = MaskFormer.from_pretrained(checkpoint), run_ours
    else:
        from transformers import Mask2FormerForUniversalSegmentation, MaskFormerForInstanceSegmentation

        kind = json.loads((Path(checkpoint) / "config.json").read_text())["model_type"]
        cls = Mask2FormerForUniversalSegmentation if kind == "mask2former" else MaskFormerForInstanceSegmentation
        model, fn = cls.from_pretrained(checkpoint).eval(), run_hf
    x = torch.randn(1, 3, size, size)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status()["VmRSS"]
    with torch.no_grad():
        fn(model, x)
    print(json.dumps({"peak_bytes": _status()["VmHWM"] - before}))


def peak_memory(which: str, checkpoint: str, size: int) -> float | None:
    if not Path("/proc/self/clear_refs").exists():
        return None  # not Linux: no way to reset the peak counter
    out = subprocess.run([sys.executable, __file__, "--child", which, "--checkpoint", checkpoint, "--size", str(size)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS[:2]), choices=PRESETS)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--child", choices=["ours", "hf"], help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_peak_memory(args.child, args.checkpoint, args.size)

    from maskformer import from_transformers

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input 1x3x{args.size}x{args.size}, "
          f"eval, {args.repeats} interleaved repeats")
    ceiling = matmul_gflops()
    print(f"plain 2048^3 fp32 matmul: {ceiling:.0f} GFLOP/s")
    for preset in args.presets:
        hf = build_hf(preset)
        ours = from_transformers(hf)
        for p in [*hf.parameters(), *ours.parameters()]:  # inference only (and FlopCounterMode wants it)
            p.requires_grad_(False)
        x = torch.randn(1, 3, args.size, args.size)
        with torch.no_grad():
            ref, out = run_hf(hf, x), run_ours(ours, x)
        diff_logits = (out.pred_logits - ref.class_queries_logits).abs().max().item()
        diff_masks = (out.pred_masks - ref.masks_queries_logits).abs().max().item()
        scale = ref.masks_queries_logits.abs().max().item()
        runs = interleaved_times({"ours": lambda v: run_ours(ours, v), "hf": lambda v: run_hf(hf, v),
                                  "ours+aux": lambda v: run_ours(ours, v, aux=True)}, x, args.repeats)
        t = {name: statistics.median(times) for name, times in runs.items()}
        flops = {"ours": count_flops(lambda v: run_ours(ours, v), x), "hf": count_flops(lambda v: run_hf(hf, v), x)}
        with tempfile.TemporaryDirectory() as tmp:
            hf.save_pretrained(tmp)
            mem = {which: peak_memory(which, tmp, args.size) for which in ("ours", "hf")}
        print(f"\n== {preset}, 150 classes ==")
        print(f"identical outputs: max |diff| pred_logits {diff_logits:.1e}, pred_masks {diff_masks:.1e} "
              f"(masks up to {scale:.1f})")
        for name in ("ours", "hf"):
            gf = flops[name] / 1e9
            print(f"{name:>4}: {t[name] * 1e3:7.1f} ms  {gf:6.1f} GFLOP  {gf / t[name]:5.0f} GFLOP/s "
                  f"({gf / t[name] / ceiling:4.0%} of matmul)  peak memory "
                  + (f"{mem[name] / 2**20:6.0f} MiB" if mem[name] is not None else "n/a"))
        num_aux = ours.config.dec_layers - 1 + ours.config.learnable_query_features
        print(f"time ratio ours/HF: {median_ratio(runs['ours'], runs['hf']):.2f}   "
              f"(ours with the {num_aux} aux predictions: {median_ratio(runs['ours+aux'], runs['hf']):.2f}; "
              f"medians of the {args.repeats} back-to-back pairs)")
        if mem["ours"] is not None:
            print(f"peak-memory ratio ours/HF: {mem['ours'] / mem['hf']:.2f}")


if __name__ == "__main__":
    main()
