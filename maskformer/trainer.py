"""Training: one engine from a laptop (the built-in Shapes data, CPU) to ADE20K on many GPUs.

``Trainer(config).train()`` runs the original recipe (REFERENCE §5; :mod:`maskformer.recipes`):

- AdamW with the backbone multiplier and no weight decay on norms and position tables, warm-up +
  poly schedule, full-model gradient clipping (:mod:`maskformer.optim`);
- optional bf16 autocast, gradient accumulation, periodic evaluation (mIoU);
- checkpoints written atomically, exact resumption, Ctrl-C saves before leaving, a non-finite loss
  stops the run naming the step;
- a progress bar (or a printed line every ``log_period`` steps), ``metrics.jsonl`` and
  ``curves.png`` in the output directory;
- CUDA (bf16, channels_last) when present, CPU otherwise; ``torchrun`` starts one process per GPU
  (or CPU worker, gloo) and each process trains on its share of every batch with
  DistributedDataParallel.

**Exact resumption.** The data stream is a pure function of the seed and the position in it:
sample ``p`` of the run is image ``perm_e[p % N]`` of a permutation seeded by ``(seed, epoch)``,
and its augmentation draws from a generator seeded by ``(seed, p)``. Step ``t`` reads positions
``t*B .. (t+1)*B - 1``, whichever process and micro-batch reads them. A checkpoint stores the
model, optimiser, schedule, step and the global random state (dropout, drop-path); resuming from
step ``t`` therefore replays exactly what an uninterrupted run would have done, and ``N``
processes with batch ``B/N`` see the very same images and augmentations as one process with
batch ``B``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from .data import collate
from .optim import build_optimizer, build_scheduler, clip_grad_norm
from .recipes import TrainConfig, load_config

__all__ = ["Trainer", "StepBatchSampler", "atomic_save", "add_train_arguments", "train_main"]


# ----------------------------------------------------------------------------------------------
# Processes
# ----------------------------------------------------------------------------------------------


def init_distributed(device: str = "auto") -> tuple[int, int, torch.device]:
    """``(rank, world_size, device)``; joins the process group when started by ``torchrun``.

    torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``. Each process takes GPU
    ``LOCAL_RANK`` (backend nccl) or, without GPUs, the CPU (backend gloo).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if world_size == 1:
        return 0, 1, torch.device(device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), dev


# ----------------------------------------------------------------------------------------------
# Data: a stream of (image index, augmentation seed) that is a pure function of the position
# ----------------------------------------------------------------------------------------------


def _mix(*values: int) -> int:
    """A 63-bit seed from integers (numpy's SeedSequence hashing: nearby inputs give unrelated seeds)."""
    return int(np.random.SeedSequence([v & 0xFFFFFFFF for v in values]).generate_state(2, np.uint64)[0] >> 1)


class StepBatchSampler(Sampler):
    """Yields, for steps ``start_step, start_step+1, ...``, this process's micro-batches of
    ``(dataset index, augmentation seed)`` keys.

    Global batch ``B`` = ``batch_size``; each of ``world_size`` processes does ``accum_steps``
    micro-batches of ``B / (world_size * accum_steps)`` per step. Micro-batch ``m`` of process
    ``r`` reads the stream positions ``t*B + (m*world_size + r)*b + [0, b)``.
    """

    def __init__(self, dataset_size: int, batch_size: int, seed: int = 0, start_step: int = 0,
                 max_steps: int | None = None, rank: int = 0, world_size: int = 1, accum_steps: int = 1):
        chunks = world_size * accum_steps
        if batch_size % chunks:
            raise ValueError(f"solver.batch_size={batch_size} must be divisible by processes x accumulation steps "
                             f"= {world_size} x {accum_steps}")
        if dataset_size < 1:
            raise ValueError("the training dataset is empty")
        self.n, self.batch_size, self.seed = dataset_size, batch_size, seed
        self.start_step, self.max_steps = start_step, max_steps
        self.rank, self.world_size, self.accum_steps = rank, world_size, accum_steps
        self.micro = batch_size // chunks
        self._perm: tuple[int, torch.Tensor] | None = None

    def key(self, position: int) -> tuple[int, int]:
        epoch, i = divmod(position, self.n)
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(_mix(self.seed, epoch))
            self._perm = (epoch, torch.randperm(self.n, generator=g))
        return int(self._perm[1][i]), _mix(self.seed, 1 << 20, position)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        while self.max_steps is None or step < self.max_steps:
            for m in range(self.accum_steps):
                first = step * self.batch_size + (m * self.world_size + self.rank) * self.micro
                yield [self.key(p) for p in range(first, first + self.micro)]
            step += 1

    def __len__(self) -> int:
        if self.max_steps is None:
            raise TypeError("an endless StepBatchSampler has no length")
        return (self.max_steps - self.start_step) * self.accum_steps


class SeededSamples(Dataset):
    """``dataset[(index, seed)]``: the sample with its random augmentation drawn from ``seed``.

    The global random state is saved and restored around the call, so loading data in the main
    process (``num_workers=0``) never shifts the model's dropout.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            py_state, np_state = random.getstate(), np.random.get_state()
            random.seed(seed)
            np.random.seed(seed % 2**32)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)


def build_datasets(cfg: TrainConfig) -> tuple[Dataset, Dataset]:
    """The training set (with the recipe's augmentation) and the validation set (original size, no
    transforms: :func:`maskformer.evaluation.evaluate_semantic` resizes it itself)."""
    from torchvision.transforms import v2

    from .data import build_dataset, train_transforms
    from .data.transforms import ColorJitterSSD

    d = cfg.data
    if d.dataset == "shapes":
        train_tf = v2.RandomHorizontalFlip()
        kw = dict(image_size=d.image_size, num_classes=d.num_classes, seed=cfg.seed)
        train = build_dataset("shapes", "train", transforms=train_tf, num_samples=d.num_train, **kw)
        val = build_dataset("shapes", "val", num_samples=d.num_val, **kw)
    else:
        train_tf = train_transforms(d.crop_size, max_size=d.max_size,
                                    single_category_max_area=d.single_category_max_area)
        if not d.color_aug_ssd:
            train_tf = v2.Compose([t for t in train_tf.transforms if not isinstance(t, ColorJitterSSD)])
        train = build_dataset("ade20k", "train", root=d.root, transforms=train_tf)
        val = build_dataset("ade20k", "val", root=d.root)
    return train, val


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Call ``write(f)`` on a temporary file in ``path``'s folder, flush it to disk, then rename it over
    ``path``: a crash at any moment leaves either the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` that never leaves a half-written file (see :func:`_atomic_write`)."""
    _atomic_write(Path(path), lambda f: torch.save(obj, f))


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, seq, gauss = state["python"]
    random.setstate((version, tuple(seq), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------------------
# The trainer
# ----------------------------------------------------------------------------------------------


class NonFiniteLossError(FloatingPointError):
    """Raised when a training loss is NaN or infinite."""


class Trainer:
    """Trains a MaskFormer (or the per-pixel baseline) as ``config`` describes.

    Args:
        config: a :class:`~maskformer.recipes.TrainConfig` (``load_config`` reads the YAML files).
        model: optional ready model (default: ``build_model(config.model)``).
        train_dataset, val_dataset: optional datasets in the :mod:`maskformer.data.collate` sample
            format (default: built from ``config.data``); ``val_dataset`` without transforms.
        progress: a tqdm bar (True), a printed line every ``log_period`` steps (False), or None:
            a bar when stderr is a terminal.
        callbacks: functions ``f(trainer, step, record)`` called after every optimiser step with
            that step's logged values (1-based ``step``); for notebooks and tests.

    After ``train()``, ``output_dir`` holds ``metrics.jsonl``, ``curves.png``, ``checkpoints/`` with
    ``last_checkpoint`` naming the latest one, and ``model/`` (``save_pretrained`` format, loadable
    with ``MaskFormer.from_pretrained``).
    """

    def __init__(self, config: TrainConfig, model: nn.Module | None = None, train_dataset: Dataset | None = None,
                 val_dataset: Dataset | None = None, progress: bool | None = None,
                 callbacks: list[Callable] | None = None):
        from .model import build_criterion, build_model

        self.cfg = config
        self.rank, self.world_size, self.device = init_distributed(config.device)
        self.is_main = self.rank == 0
        self.output_dir = Path(config.output_dir)
        self.progress = progress
        self.callbacks = list(callbacks or [])
        s = config.solver
        self.precision = ("bf16" if self.device.type == "cuda" else "fp32") if s.precision == "auto" else s.precision

        torch.manual_seed(_mix(config.seed, self.rank))  # model init is overwritten by rank 0's through DDP
        if train_dataset is None or val_dataset is None:
            built_train, built_val = build_datasets(config)
            train_dataset = train_dataset if train_dataset is not None else built_train
            val_dataset = val_dataset if val_dataset is not None else built_val
        self.train_dataset, self.val_dataset = train_dataset, val_dataset
        self._check_classes(train_dataset)

        if model is None:
            model = build_model(config.model, pretrained_backbone=config.pretrained_backbone)
        self.model = model.to(self.device)
        if self.device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)
        self.criterion = build_criterion(config.model).to(self.device)
        self.optimizer = build_optimizer(self.model, s.lr, s.weight_decay, s.backbone_multiplier,
                                         s.weight_decay_norm, s.weight_decay_embed)
        self.scheduler = build_scheduler(self.optimizer, s.max_iters, s.poly_power, s.warmup_iters, s.warmup_factor)
        self.ddp = None
        if self.world_size > 1:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.step = 0  # optimiser steps done
        self.history: list[dict[str, Any]] = []
        self._interrupted = False

    # ---- set-up helpers --------------------------------------------------------------------
    def _check_classes(self, dataset: Dataset) -> None:
        k = getattr(dataset, "num_classes", None)
        if k is not None and k != self.cfg.model.num_classes:
            raise ValueError(f"the dataset has {k} classes but model.num_classes={self.cfg.model.num_classes}; "
                             f"set model.num_classes={k}")

    def _loader(self) -> DataLoader:
        s = self.cfg.solver
        sampler = StepBatchSampler(len(self.train_dataset), s.batch_size, self.cfg.seed, self.step, s.max_iters,
                                   self.rank, self.world_size, s.grad_accum_steps)
        workers = self.cfg.data.num_workers
        # its own generator: DataLoader draws a worker seed when it starts, which must not move the global one
        return DataLoader(SeededSamples(self.train_dataset), batch_sampler=sampler, collate_fn=collate,
                          generator=torch.Generator().manual_seed(self.cfg.seed),
                          num_workers=workers, persistent_workers=False, pin_memory=self.device.type == "cuda",
                          prefetch_factor=2 if workers else None)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        dev = self.device
        batch = dict(batch)
        fmt = torch.channels_last if dev.type == "cuda" else torch.contiguous_format
        batch["images"] = batch["images"].to(dev, non_blocking=True, memory_format=fmt)
        batch["semantic"] = batch["semantic"].to(dev, non_blocking=True)
        batch["targets"] = [{k: v.to(dev, non_blocking=True) for k, v in t.items()} for t in batch["targets"]]
        return batch

    # ---- checkpoints -----------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.output_dir / "checkpoints"

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoints/step_XXXXXXX.pt`` and point ``last_checkpoint`` at it (main process only)."""
        if not self.is_main:
            return None
        path = self.checkpoint_dir / f"step_{self.step:07d}.pt"
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "step": self.step, "rng": _rng_state(),
                 "config": self.cfg.to_dict(), "history": self.history}
        atomic_save(state, path)
        _atomic_write(self.checkpoint_dir / "last_checkpoint", lambda f: f.write(f"{path.name}\n".encode()))
        old = sorted(self.checkpoint_dir.glob("step_*.pt"))[: -self.cfg.keep_checkpoints or None]
        for p in old:
            if p != path:
                p.unlink(missing_ok=True)
        return path

    def last_checkpoint(self) -> Path | None:
        pointer = self.checkpoint_dir / "last_checkpoint"
        if not pointer.exists():
            return None
        path = self.checkpoint_dir / pointer.read_text().strip()
        if not path.exists():
            raise FileNotFoundError(f"{pointer} names {path.name}, which does not exist; "
                                    f"pass --resume PATH with one of {sorted(p.name for p in self.checkpoint_dir.glob('*.pt'))}")
        return path

    def resume(self, path: str | os.PathLike | None = None) -> bool:
        """Load ``path`` (default: the latest checkpoint in ``output_dir``); False when there is none."""
        path = Path(path) if path is not None else self.last_checkpoint()
        if path is None:
            return False
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as err:  # a truncated or foreign file: say which
            raise RuntimeError(f"cannot load checkpoint {path}: {err}") from err
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = state["step"]
        self.history = list(state.get("history", []))
        _set_rng_state(state["rng"])
        # the rng state holds this process's generator; other processes derive theirs from it
        if self.world_size > 1:
            torch.manual_seed(_mix(int(torch.randint(2**31, ())), self.rank))
        self._print(f"resumed from {path} at step {self.step}")
        return True

    # ---- logging ---------------------------------------------------------------------------
    def _print(self, text: str) -> None:
        if self.is_main:
            print(text, flush=True)

    def _log(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if not self.is_main:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with open(self.output_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def plot_curves(self, path: str | os.PathLike | None = None) -> Path | None:
        """``curves.png``: training loss (raw and smoothed) and validation mIoU against the step."""
        if not self.is_main:
            return None
        from .plotting import plot_training_curves

        path = Path(path) if path is not None else self.output_dir / "curves.png"
        plot_training_curves(self.history, path, title=self.output_dir.name)
        return path

    # ---- the loop --------------------------------------------------------------------------
    def train_step(self, micro_batches: list[dict[str, Any]]) -> dict[str, float]:
        """One optimiser step over ``micro_batches`` (this process's share of the global batch)."""
        model = self.ddp or self.model
        model.train()
        self.optimizer.zero_grad(set_to_none=True)
        names, total = [], None
        n = len(micro_batches)
        for i, batch in enumerate(micro_batches):
            batch = self._to_device(batch)
            sync = self.ddp.no_sync() if (self.ddp is not None and i < n - 1) else contextlib.nullcontext()
            with sync:
                with self._autocast():
                    outputs = model(batch["images"])
                losses = self.criterion.batch_losses(outputs, batch)
                loss = self.criterion.total_loss(losses)
                (loss / n).backward()
            terms = {**losses, "loss": loss}
            names = list(terms)
            values = torch.stack([v.detach().double() for v in terms.values()]) / n  # [terms], stays on device
            total = values if total is None else total + values
        if self.world_size > 1:  # every process logs (and stops on) the same averaged values
            dist.all_reduce(total)
            total = total / self.world_size
        totals = dict(zip(names, total.tolist()))  # one device-to-host copy per step
        if not math.isfinite(totals["loss"]):
            bad = {k: v for k, v in totals.items() if not math.isfinite(v)}
            raise NonFiniteLossError(
                f"non-finite loss at step {self.step + 1}: {bad}; the weights were not updated. The last good "
                f"checkpoint is {self.last_checkpoint()}. Try a lower solver.lr, solver.clip_grad_norm, "
                f"or solver.precision=fp32, and check the batch {[b['names'] for b in micro_batches]}")
        grad_norm = clip_grad_norm(self.model.parameters(), self.cfg.solver.clip_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        if grad_norm is not None:
            totals["grad_norm"] = float(grad_norm)
        return totals

    def train(self, evaluate: bool = True) -> dict[str, Any]:
        """Train from ``self.step`` to ``solver.max_iters``; returns the final evaluation
        (``evaluate=False`` skips every evaluation, periodic ones included)."""
        cfg, s = self.cfg, self.cfg.solver
        if self.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        self._print(f"training {type(self.model).__name__} ({self.model.num_parameters / 1e6:.2f}M parameters) on "
                    f"{len(self.train_dataset)} images, {self.world_size} process(es) on {self.device}, "
                    f"{self.precision}; steps {self.step}->{s.max_iters}, batch {s.batch_size}; output {self.output_dir}")
        bar = self._progress_bar()
        previous = signal.getsignal(signal.SIGINT)
        if threading_main():
            signal.signal(signal.SIGINT, self._on_sigint)
        loader_iter = iter(self._loader())
        t_last, window, data_time = time.perf_counter(), [], 0.0
        final: dict[str, Any] = {}
        try:
            while self.step < s.max_iters:
                t0 = time.perf_counter()
                micro = [next(loader_iter) for _ in range(s.grad_accum_steps)]
                data_time += time.perf_counter() - t0
                values = self.train_step(micro)
                window.append(values["loss"])
                lr = max(g["lr"] for g in self.optimizer.param_groups)  # solver.lr x schedule (backbone: x multiplier)
                record = {"step": self.step, "lr": lr, **values}
                for cb in self.callbacks:
                    cb(self, self.step, record)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{values['loss']:.3f}", lr=f"{record['lr']:.2e}")
                if self.step % cfg.log_period == 0 or self.step == s.max_iters:
                    now = time.perf_counter()
                    record.update(time_per_step=(now - t_last) / len(window), data_time=data_time / len(window),
                                  images_per_s=s.batch_size * len(window) / (now - t_last))
                    record["loss_avg"] = sum(window) / len(window)
                    self._log(record)
                    if bar is None:
                        self._print(f"step {self.step}/{s.max_iters}  loss {record['loss_avg']:.4f}  "
                                    f"lr {record['lr']:.2e}  {record['images_per_s']:.1f} img/s")
                    t_last, window, data_time = now, [], 0.0
                if evaluate and cfg.eval_period and self.step % cfg.eval_period == 0 and self.step < s.max_iters:
                    final = self.evaluate()
                if cfg.checkpoint_period and self.step % cfg.checkpoint_period == 0:
                    self.save_checkpoint()
                if self._interrupted:
                    path = self.save_checkpoint()
                    self._print(f"\ninterrupted at step {self.step}: saved {path}; run again with --resume to continue")
                    raise KeyboardInterrupt
            if evaluate:
                final = self.evaluate()
            self.save_checkpoint()
            if self.is_main:
                self.model.save_pretrained(str(self.output_dir / "model"))
                self.plot_curves()
        finally:
            if bar is not None:
                bar.close()
            if threading_main():
                signal.signal(signal.SIGINT, previous)
        return final

    def _on_sigint(self, signum, frame) -> None:
        if self._interrupted:  # a second Ctrl-C leaves at once
            raise KeyboardInterrupt
        self._interrupted = True
        self._print("\nCtrl-C: finishing this step and saving a checkpoint (press again to quit at once)")

    def _progress_bar(self):
        show = self.progress if self.progress is not None else sys.stderr.isatty()
        if not (show and self.is_main):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.cfg.solver.max_iters, initial=self.step, desc="train", unit="step", dynamic_ncols=True)

    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        """mIoU on the validation set (main process; the others wait), logged and returned."""
        from .evaluation import evaluate_semantic

        results: dict[str, Any] = {}
        if self.is_main:
            d = self.cfg.data
            names = getattr(self.val_dataset, "class_names", None)
            results = evaluate_semantic(self.model, self.val_dataset, short_edges=(d.test_short_edge,),
                                        max_size=d.test_max_size, device=self.device, class_names=names,
                                        progress=bool(self.progress))
            record = {"step": self.step, "mIoU": results["mIoU"], "pixel_accuracy": results.get("pixel_accuracy")}
            self._log(record)
            self._print(f"step {self.step}: mIoU {results['mIoU']:.4f} on {len(self.val_dataset)} validation images")
            self.plot_curves()
        if self.world_size > 1:
            dist.barrier()
        return results


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# ----------------------------------------------------------------------------------------------
# Command line: python -m maskformer train
# ----------------------------------------------------------------------------------------------

DEFAULT_CONFIG = "shapes/maskformer_tiny"


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help=f"a YAML file, or a shipped config such as ade20k-150/swin/maskformer_swin_tiny_bs16_160k "
                             f"(default: {DEFAULT_CONFIG}, a few minutes on a CPU)")
    parser.add_argument("--dataset", choices=["shapes", "ade20k"], help="override data.dataset")
    parser.add_argument("--data-root", help="ADE20K: the ADEChallengeData2016 folder (default: the Hub)")
    parser.add_argument("--output-dir", help="override output_dir")
    parser.add_argument("--max-iters", type=int, help="override solver.max_iters")
    parser.add_argument("--batch-size", type=int, help="override solver.batch_size (all processes together)")
    parser.add_argument("--lr", type=float, help="override solver.lr")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--resume", nargs="?", const="auto", default=None,
                        help="continue from the latest checkpoint in the output directory (or from PATH)")
    parser.add_argument("--no-pretrained", action="store_true", help="random backbone instead of ImageNet weights")
    parser.add_argument("--progress", choices=["auto", "bar", "lines"], default="auto")
    parser.add_argument("opts", nargs="*", metavar="KEY=VALUE",
                        help="any other field, e.g. solver.warmup_iters=100 model.num_queries=50")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides = list(args.opts)
    for flag, key in (("dataset", "data.dataset"), ("data_root", "data.root"), ("output_dir", "output_dir"),
                      ("max_iters", "solver.max_iters"), ("batch_size", "solver.batch_size"), ("lr", "solver.lr"),
                      ("device", "device")):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.no_pretrained:
        overrides.append("pretrained_backbone=false")
    return load_config(args.config, overrides)


def train_main(args: argparse.Namespace) -> dict[str, Any]:
    """``python -m maskformer train``: problems with the config or the data end with their message."""
    try:
        cfg = config_from_args(args)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"train: {err}") from None
    progress = {"auto": None, "bar": True, "lines": False}[args.progress]
    try:
        trainer = Trainer(cfg, progress=progress)
    except (FileNotFoundError, ValueError, RuntimeError, OSError) as err:
        raise SystemExit(f"train: {err}") from None
    if args.resume is not None and not trainer.resume(None if args.resume == "auto" else args.resume):
        trainer._print(f"no checkpoint in {trainer.checkpoint_dir}; starting from step 0")
    results = trainer.train()
    if trainer.is_main:
        from .evaluation import format_results

        print(format_results(results))
        print(f"model saved to {trainer.output_dir / 'model'}; curves in {trainer.output_dir / 'curves.png'}")
    return results
