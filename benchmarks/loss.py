"""Time and peak memory of matcher + loss (forward and backward): ours against Hugging Face's.

The workload is one ADE20K-like training step of MaskFormer's criterion: 2 images with 512x512
targets, about 20 segments each (a random partition of the image, like semantic labels),
100 queries, 150 classes, 6 decoder outputs (the last layer and 5 aux), mask logits at 128x128.
Each run matches every output, computes every term, weights them 1 / 20 / 1 and backpropagates
to the 12 prediction tensors. Three variants:

    hf      transformers' MaskFormerLoss + MaskFormerHungarianMatcher (the reference)
    ours    maskformer.MaskFormerLoss, full-resolution masks (the paper's loss)
    points  maskformer.MaskFormerLoss(num_points=12544) (Mask2Former's point-sampled loss)

Time: the machine this was written on has 2 cores shared with other jobs, so wall time partly
measures the neighbours. We report the median of both wall time and process CPU time (all
threads, user + system; what the work itself costs), over ``--rounds`` rounds that each start a
fresh process per variant in turn, so a burst of outside load hits all variants alike.
Each process times ``--repeats`` runs after the memory run, which doubles as warm-up.
The default is one intra-op thread (``--threads``): on a busy machine, OpenMP threads that
wait for a descheduled sibling make two-thread timings swing by 3x from run to run.

Memory: each variant runs in its own fresh Python process. PyTorch's CPU allocations go straight
to malloc, invisible to tracemalloc and with no allocator statistics on CPU, so we measure what
the operating system sees: the peak resident set size (``ru_maxrss``) during the first full-size
run minus the resident size just before it, with the inputs already built. Before measuring, the
process runs the same code once on a tiny problem, so that lazy initialisation (thread pools,
kernels, imports) is not counted; the tiny run frees next to nothing that the big run could
reuse, so the delta is not flattered. Peak RSS is what decides whether a training job fits.

Run: python benchmarks/loss.py [--rounds 3] [--repeats 1]   (about 2 minutes on 2 idle cores)
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

BATCH, QUERIES, CLASSES, LAYERS = 2, 100, 150, 6
TARGET_SIZE, PRED_SIZE, SEGMENTS = 512, 128, 20


def make_inputs(batch, queries, classes, layers, target_size, pred_size, segments, seed=0):
    """Random predictions (leaf tensors) and targets that partition each image into segments."""
    generator = torch.Generator().manual_seed(seed)
    predictions = [
        {
            "pred_logits": torch.randn(batch, queries, classes + 1, generator=generator).requires_grad_(),
            "pred_masks": torch.randn(batch, queries, pred_size, pred_size, generator=generator).requires_grad_(),
        }
        for _ in range(layers)
    ]
    targets = []
    for _ in range(batch):
        # Voronoi cells of random seeds: disjoint segments that cover the image, like a label map.
        seeds = torch.rand(segments, 2, generator=generator) * target_size
        ys, xs = torch.meshgrid(torch.arange(target_size), torch.arange(target_size), indexing="ij")
        pixels = torch.stack([ys, xs], -1).reshape(-1, 2).float()  # [H*W, 2]
        label_map = torch.cdist(pixels, seeds).argmin(-1).reshape(target_size, target_size)
        present = label_map.unique()
        masks = (label_map[None] == present[:, None, None]).float()  # [N, H, W]
        labels = torch.randperm(classes, generator=generator)[: len(present)]
        targets.append({"labels": labels, "masks": masks})
    return predictions, targets


def step_function(variant, classes):
    """A function running matcher + loss forward + backward for the variant."""
    if variant == "hf":
        from transformers.models.maskformer.modeling_maskformer import MaskFormerHungarianMatcher
        from transformers.models.maskformer.modeling_maskformer import MaskFormerLoss as HFLoss

        weights = {"loss_cross_entropy": 1.0, "loss_mask": 20.0, "loss_dice": 1.0}
        criterion = HFLoss(classes, MaskFormerHungarianMatcher(1.0, 20.0, 1.0), weights, eos_coef=0.1)

        def step(predictions, targets):
            last, *aux = predictions
            losses = criterion(
                last["pred_masks"],
                last["pred_logits"],
                [t["masks"] for t in targets],
                [t["labels"] for t in targets],
                [{"masks_queries_logits": p["pred_masks"], "class_queries_logits": p["pred_logits"]} for p in aux],
            )
            # As MaskFormerForInstanceSegmentation.get_loss_dict weights them.
            total = sum(weights[next(k for k in weights if k in name)] * value for name, value in losses.items())
            total.backward()

        return step

    from maskformer.loss import MaskFormerLoss

    criterion = MaskFormerLoss(classes, num_points=12544 if variant == "points" else None)

    def step(predictions, targets):
        outputs = dict(predictions[0], aux_outputs=predictions[1:])
        criterion.total_loss(criterion(outputs, targets)).backward()

    return step


def current_rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


def worker(variant, repeats, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    step = step_function(variant, CLASSES)
    tiny = make_inputs(BATCH, 10, CLASSES, LAYERS, 64, 16, 4)
    step(*tiny)
    predictions, targets = make_inputs(BATCH, QUERIES, CLASSES, LAYERS, TARGET_SIZE, PRED_SIZE, SEGMENTS)
    before = current_rss_kib()
    step(predictions, targets)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    wall, cpu = [], []
    for _ in range(repeats):
        for p in predictions:
            for tensor in p.values():
                tensor.grad = None
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        step(predictions, targets)
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_mib": (peak - before) / 1024}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per variant")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per process")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--worker", choices=["hf", "ours", "points"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.repeats, args.threads)
        return

    variants = ["hf", "ours", "points"]
    runs = {v: {"wall_s": [], "cpu_s": [], "peak_mib": []} for v in variants}
    for _ in range(args.rounds):
        for variant in variants:
            command = [sys.executable, __file__, "--worker", variant, "--repeats", str(args.repeats)]
            command += ["--threads", str(args.threads)]
            line = subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            for key, value in json.loads(line).items():
                runs[variant][key] += value if isinstance(value, list) else [value]
    median = {v: {key: statistics.median(values) for key, values in r.items()} for v, r in runs.items()}
    print(
        f"{BATCH} images, targets {TARGET_SIZE}x{TARGET_SIZE}, {QUERIES} queries, {CLASSES} classes, "
        f"{LAYERS} outputs, predictions {PRED_SIZE}x{PRED_SIZE}; matcher + loss, forward + backward; "
        f"{args.threads} thread(s); medians of {args.rounds * args.repeats} runs in {args.rounds} processes"
    )
    print(f"{'variant':<9}{'wall s':>8}{'cpu s':>8}{'peak MiB':>10}{'wall/HF':>9}{'cpu/HF':>8}{'mem/HF':>8}")
    hf = median["hf"]
    for variant, m in median.items():
        print(
            f"{variant:<9}{m['wall_s']:>8.2f}{m['cpu_s']:>8.2f}{m['peak_mib']:>10.0f}"
            f"{m['wall_s'] / hf['wall_s']:>9.2f}{m['cpu_s'] / hf['cpu_s']:>8.2f}{m['peak_mib'] / hf['peak_mib']:>8.2f}"
        )


if __name__ == "__main__":
    main()
