"""How many intra-op threads the notebooks' small models should use: training steps per second by thread count.

    python benchmarks/threads.py                     # shapes/maskformer_tiny, 1 and 2 threads (up to the core count)
    python benchmarks/threads.py --threads 1 2 4 --steps 30
    python benchmarks/threads.py --load 1           # the same with one busy process beside it (a browser, a build)

Notebook 07 trains `shapes/maskformer_tiny` (a 64 px model with batch 16) on a CPU. On a small machine, more
OpenMP threads are not always faster for such small kernels: every operator is split into pieces too short to
pay for the synchronisation, and a thread that the operating system deschedules (another program, Jupyter
itself) holds all the others up. This script times the same training steps with each thread count, in one
process, interleaved round by round so that load on a shared machine hits all counts alike, and prints the
median step time of each count and its ratio to one thread. ``--load N`` keeps N other processes busy meanwhile,
which is the everyday situation of a laptop. The notebooks' setup cells follow its result.

On the 2-core development machine (torch 2.14, CPU): idle, 2 threads took 0.81x the time of 1; with one busy
process beside it, 2.77x. Hence the notebooks use all cores but one.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time

import torch

from maskformer.builders import build_criterion, build_model
from maskformer.data import collate
from maskformer.data.build import build_datasets
from maskformer.optim import build_optimizer, clip_grad_norm
from maskformer.recipes import load_config


def _spin() -> None:
    while True:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="shapes/maskformer_tiny")
    parser.add_argument("--threads", type=int, nargs="+", default=sorted({1, min(2, os.cpu_count() or 1)}))
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per thread count and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", type=int, default=0, help="busy processes to run beside the timed steps")
    args = parser.parse_args()

    cfg = load_config(args.config, ["device=cpu"])
    torch.manual_seed(cfg.seed)
    train_set, _ = build_datasets(cfg.data, cfg.seed)
    batches = [collate([train_set[(i * cfg.solver.batch_size + j) % len(train_set)] for j in range(cfg.solver.batch_size)])
               for i in range(args.steps)]
    model = build_model(cfg.model).train()
    criterion = build_criterion(cfg.model)
    s = cfg.solver
    optimizer = build_optimizer(model, s.lr, s.weight_decay, s.backbone_multiplier, s.weight_decay_norm, s.weight_decay_embed)

    def step(batch):
        loss = criterion.total_loss(criterion.batch_losses(model(batch["images"]), batch))
        optimizer.zero_grad()
        loss.backward()
        clip_grad_norm(model.parameters(), s.clip_grad_norm)
        optimizer.step()

    print(f"{args.config}: batch {s.batch_size}, {cfg.data.image_size} px, {model.num_parameters / 1e6:.2f}M parameters; "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}, default {torch.get_num_threads()} threads")
    load = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.load)]
    for p in load:
        p.start()
    times: dict[int, list[float]] = {n: [] for n in args.threads}
    for n in args.threads:  # warm-up: the first steps of each count allocate and pick kernels
        torch.set_num_threads(n)
        step(batches[0])
    for _ in range(args.rounds):
        for n in args.threads:
            torch.set_num_threads(n)
            for batch in batches:
                start = time.perf_counter()
                step(batch)
                times[n].append(time.perf_counter() - start)
    for p in load:
        p.terminate()
    if load:
        print(f"with {len(load)} busy process{'es' if len(load) > 1 else ''} beside the timed steps")
    base = statistics.median(times[args.threads[0]])
    for n in args.threads:
        median = statistics.median(times[n])
        print(f"{n:2d} thread{'s' if n > 1 else ' '}: median step {median * 1e3:7.1f} ms   "
              f"ratio to {args.threads[0]} thread{'s' if args.threads[0] > 1 else ''}: {median / base:5.2f}")


if __name__ == "__main__":
    main()
