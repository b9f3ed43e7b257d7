"""Training: one engine from a laptop (the built-in Shapes data, CPU) to ADE20K on many GPUs.

``Trainer(config).train()`` runs the original recipe (:mod:`maskformer.recipes`, which names the
original config key of every value):

- AdamW with the backbone multiplier and no weight decay on norms and position tables, warm-up +
  poly schedule, full-model gradient clipping (:mod:`maskformer.optim`);
- optional bf16 autocast, gradient accumulation that equals the full batch exactly (the loss
  normalisers are counted once per step over every micro-batch and process), periodic evaluation;
- checkpoints written atomically, exact resumption, Ctrl-C saves before leaving, a non-finite loss
  stops the run naming the step, the batch's files and the last good checkpoint;
- a progress bar (or a printed line every ``log_period`` steps), ``metrics.jsonl``, ``curves.png``
  and optionally TensorBoard event files in the output directory;
- CUDA (bf16, channels_last) when present, CPU otherwise; ``torchrun`` starts one process per GPU
  (or CPU worker, gloo) and each process trains on its share of every batch with
  DistributedDataParallel.

The pieces it uses live in their own modules: process set-up (:mod:`maskformer.distributed`), the
deterministic data stream (:mod:`maskformer.data.stream`), the dataset registry
(:mod:`maskformer.data.build`) and checkpoint I/O (:mod:`maskformer.checkpoint`). A checkpoint stores
the model, optimiser, schedule, step and the global random state (dropout, drop-path); with the
data stream a pure function of the seed and the position, resuming from step ``t`` replays exactly
what an uninterrupted run would have done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .builders import build_criterion, build_model
from .checkpoint import CheckpointError, atomic_save, atomic_write, load_checkpoint, load_latest, rng_state, set_rng_state
from .data import collate
from .data.build import build_datasets
from .data.stream import SeededSamples, StepBatchSampler, mix_seed
from .distributed import init_distributed, is_main_thread
from .evaluation import _base as evaluation_base
from .optim import build_optimizer, build_scheduler, clip_grad_norm
from .recipes import TrainConfig

__all__ = ["Trainer", "NonFiniteLossError", "run_files", "RUN_FILES"]

# What a run writes into its output directory; a new run refuses a directory holding any of them.
RUN_FILES = ("metrics.jsonl", "checkpoints", "model", "curves.png", "config.json", "tensorboard")


def run_files(output_dir: str | os.PathLike) -> list[str]:
    """The files of an earlier run found in ``output_dir`` (empty: the directory is free; a
    ``config.json`` alone, left by a run that stopped before its first step, holds no work)."""
    output_dir = Path(output_dir)
    found = [name for name in RUN_FILES if (output_dir / name).exists()]
    return [] if found == ["config.json"] else found


class NonFiniteLossError(FloatingPointError):
    """Raised when a training loss is NaN or infinite."""


class DataLoadingError(RuntimeError):
    """A sample could not be read; the message is the dataset's one line naming the file."""


def _one_line(err: BaseException) -> str:
    """The dataset's own message of an error re-raised by a DataLoader worker, without the worker's traceback."""
    text = str(err)
    if "Original Traceback" in text:
        lines = [line for line in text.splitlines() if line.strip()]
        text = lines[-1].split(": ", 1)[-1] if lines else text
    return text


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
    with ``MaskFormer.from_pretrained``; its config carries the class names as ``id2label`` and the
    data the model was trained and evaluated on). A run that starts at step 0 replaces the files of an
    earlier run in the same directory; ``python -m maskformer train`` refuses to, unless told.
    """

    def __init__(self, config: TrainConfig, model: nn.Module | None = None, train_dataset: Dataset | None = None,
                 val_dataset: Dataset | None = None, progress: bool | None = None,
                 callbacks: list[Callable] | None = None):
        self.cfg = config
        self.rank, self.world_size, self.device = init_distributed(config.device)
        self.is_main = self.rank == 0
        self.output_dir = Path(config.output_dir)
        self.progress = progress
        self.callbacks = list(callbacks or [])
        s = config.solver
        self.precision = ("bf16" if self.device.type == "cuda" else "fp32") if s.precision == "auto" else s.precision

        torch.manual_seed(mix_seed(config.seed, self.rank))  # model init is overwritten by rank 0's through DDP
        if train_dataset is None or val_dataset is None:
            built_train, built_val = build_datasets(config.data, config.seed)
            train_dataset = train_dataset if train_dataset is not None else built_train
            val_dataset = val_dataset if val_dataset is not None else built_val
        self.train_dataset, self.val_dataset = train_dataset, val_dataset
        self._check_classes(train_dataset)

        if model is None:
            model = build_model(config.model, pretrained_backbone=config.pretrained_backbone)
        self._describe_model(model, train_dataset)
        self.model = model.to(self.device)
        if self.device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)
        self.criterion = build_criterion(config.model).to(self.device)
        if hasattr(self.criterion, "ignore_index"):  # the per-pixel losses read the data's unlabelled value
            self.criterion.ignore_index = config.data.ignore_index
        self.optimizer = build_optimizer(self.model, s.lr, s.weight_decay, s.backbone_multiplier,
                                         s.weight_decay_norm, s.weight_decay_embed)
        self.scheduler = build_scheduler(self.optimizer, s.max_iters, s.poly_power, s.warmup_iters, s.warmup_factor,
                                         s.lr_schedule, s.lr_steps, s.lr_gamma)
        self.ddp = None
        if self.world_size > 1:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.step = 0  # optimiser steps done
        self.history: list[dict[str, Any]] = []
        self.last_saved: Path | None = None  # the newest checkpoint written or resumed from
        self._interrupted = False
        self._bar = None
        self._tensorboard = None

    # ---- set-up helpers --------------------------------------------------------------------
    def _check_classes(self, dataset: Dataset) -> None:
        k = getattr(dataset, "num_classes", None)
        if k is not None and k != self.cfg.model.num_classes:
            raise ValueError(f"the dataset has {k} classes but model.num_classes={self.cfg.model.num_classes}; "
                             f"set model.num_classes={k}")

    def _describe_model(self, model: nn.Module, dataset: Dataset) -> None:
        """Give the saved model its class names and the data it was trained and evaluated on, so that
        ``predict`` shows names and ``evaluate`` without ``--dataset`` reproduces the training's score."""
        config = getattr(model, "config", None)
        if config is None:
            return
        names = getattr(dataset, "class_names", None)
        if names is not None and config.id2label is None:
            config.id2label = {i: str(n) for i, n in enumerate(names)}
        config.extra["training"] = {"data": dataclasses.asdict(self.cfg.data), "seed": self.cfg.seed}
        stuff = getattr(evaluation_base(dataset), "stuff_ids", None)  # under FirstSamples / held-out Subsets
        if stuff is not None:  # panoptic inference merges each stuff class into one segment
            config.extra["training"]["stuff_ids"] = [int(i) for i in stuff]

    def _loader(self) -> DataLoader:
        s = self.cfg.solver
        sampler = StepBatchSampler(len(self.train_dataset), s.batch_size, self.cfg.seed, self.step, s.max_iters,
                                   self.rank, self.world_size, s.grad_accum_steps)
        workers = self.cfg.data.num_workers
        # its own generator: DataLoader draws a worker seed when it starts, which must not move the global one
        return DataLoader(SeededSamples(self.train_dataset), batch_sampler=sampler,
                          collate_fn=functools.partial(collate, ignore_index=self.cfg.data.ignore_index),
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
                 "scheduler": self.scheduler.state_dict(), "step": self.step, "rng": rng_state(),
                 "config": self.cfg.to_dict(), "history": self.history}
        atomic_save(state, path)
        atomic_write(self.checkpoint_dir / "last_checkpoint", lambda f: f.write(f"{path.name}\n".encode()))
        old = sorted(self.checkpoint_dir.glob("step_*.pt"))[: -self.cfg.keep_checkpoints or None]
        for p in old:
            if p != path:
                p.unlink(missing_ok=True)
        self.last_saved = path
        return path

    def last_checkpoint(self) -> Path | None:
        """The checkpoint ``last_checkpoint`` points at, if it exists."""
        pointer = self.checkpoint_dir / "last_checkpoint"
        if not pointer.exists():
            return None
        path = self.checkpoint_dir / pointer.read_text().strip()
        return path if path.exists() else None

    def resume(self, path: str | os.PathLike | None = None) -> bool:
        """Load ``path`` (default: the latest good checkpoint in ``output_dir``, falling back to an
        older one when the latest is damaged); False when there is none.

        Raises :class:`~maskformer.checkpoint.CheckpointError` when the checkpoint cannot be used:
        damaged, or trained with a model that differs from this config's (the differing fields are named).
        """
        if path is not None:
            state = load_checkpoint(path, self.device)
            path = Path(path)
        else:
            found = load_latest(self.checkpoint_dir, self.device, warn=self._print)
            if found is None:
                return False
            state, path = found
        self._check_same_model(state, path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = state["step"]
        self.history = list(state.get("history", []))
        set_rng_state(state["rng"])
        # the rng state holds this process's generator; other processes derive theirs from it
        if self.world_size > 1:
            torch.manual_seed(mix_seed(int(torch.randint(2**31, ())), self.rank))
        self.last_saved = path
        if self.is_main:  # metrics.jsonl continues from the checkpoint: drop what was logged after it
            lines = "".join(json.dumps(r) + "\n" for r in self.history)
            atomic_write(self.output_dir / "metrics.jsonl", lambda f: f.write(lines.encode()))
        self._print(f"resumed from {path} at step {self.step}")
        return True

    def _check_same_model(self, state: dict[str, Any], path: Path) -> None:
        saved = (state.get("config") or {}).get("model")
        if saved is None:
            return
        ours = self.cfg.model.to_dict()
        ignore = {"id2label", "extra"}
        differ = [f"model.{k}: checkpoint {saved.get(k)!r}, config {ours[k]!r}" for k in ours
                  if k not in ignore and k in saved and _plain(saved[k]) != _plain(ours[k])]
        if differ:
            raise CheckpointError(f"{path} was trained with a different model ({'; '.join(differ)}); resume with the "
                                  f"checkpoint's config, or start a new run in another --output-dir")

    # ---- logging ---------------------------------------------------------------------------
    def _print(self, text: str) -> None:
        """A line for the user, printed above the progress bar when there is one."""
        if not self.is_main:
            return
        if self._bar is not None:
            self._bar.write(text)
        else:
            print(text, flush=True)

    def _log(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if not self.is_main:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with open(self.output_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tensorboard is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and value is not None:
                    self._tensorboard.add_scalar(_tensorboard_tag(key), value, record["step"])

    def _open_tensorboard(self) -> None:
        if not (self.is_main and self.cfg.tensorboard):
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise RuntimeError("tensorboard=true needs the tensorboard package: pip install 'maskformer[tensorboard]' "
                               "(or pip install tensorboard), or drop the option") from None
        self._tensorboard = SummaryWriter(str(self.output_dir / "tensorboard"), purge_step=self.step + 1)

    def plot_curves(self, path: str | os.PathLike | None = None) -> Path | None:
        """``curves.png``: training loss (raw and smoothed) and validation mIoU against the step."""
        if not self.is_main:
            return None
        from .plotting import plot_training_curves

        path = Path(path) if path is not None else self.output_dir / "curves.png"
        plot_training_curves(self.history, path, title=self.output_dir.name)
        return path

    def _start_fresh(self) -> None:
        """A run from step 0: remove an earlier run's files so that none of them mixes with the new one."""
        if not self.is_main:
            return
        found = run_files(self.output_dir)
        if found:
            self._print(f"note: {self.output_dir} held an earlier run ({', '.join(found)}); starting a new one there")
        for name in found:
            target = self.output_dir / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()

    # ---- the loop --------------------------------------------------------------------------
    def train_step(self, micro_batches: list[dict[str, Any]]) -> dict[str, float]:
        """One optimiser step over ``micro_batches`` (this process's share of the global batch).

        The loss normalisers (target masks, class-weight total, labelled pixels) are counted once over
        all micro-batches of all processes, so each micro-batch's loss is its exact share of the
        full batch's loss, and their sum (gradients included) equals one pass over the whole batch.
        """
        model = self.ddp or self.model
        model.train()
        self.optimizer.zero_grad(set_to_none=True)
        names, total = [], None
        n = len(micro_batches)
        normalisers = self.criterion.normalisers(micro_batches)
        for i, batch in enumerate(micro_batches):
            batch = self._to_device(batch)
            sync = self.ddp.no_sync() if (self.ddp is not None and i < n - 1) else contextlib.nullcontext()
            with sync:
                with self._autocast():
                    outputs = model(batch["images"])
                losses = self.criterion.batch_losses(outputs, batch, normalisers)
                loss = self.criterion.total_loss(losses)
                loss.backward()
            terms = {**losses, "loss": loss}
            names = list(terms)
            values = torch.stack([v.detach().double() for v in terms.values()])  # [terms], stays on device
            total = values if total is None else total + values
        if self.world_size > 1:  # every process logs (and stops on) the same averaged values
            dist.all_reduce(total)
            total = total / self.world_size
        totals = dict(zip(names, total.tolist()))  # one device-to-host copy per step
        if not math.isfinite(totals["loss"]):
            bad = {k: v for k, v in totals.items() if not math.isfinite(v)}
            last = (f"the last good checkpoint is {self.last_saved}" if self.last_saved is not None else
                    f"no checkpoint was written yet (checkpoint_period={self.cfg.checkpoint_period})")
            files = [name for b in micro_batches for name in b["names"]]
            raise NonFiniteLossError(
                f"non-finite loss at step {self.step + 1} ({', '.join(sorted(bad))}); the weights were not updated "
                f"and {last}. Try a lower solver.lr, solver.clip_grad_norm, or solver.precision=fp32, and check "
                f"the batch's files {files}")
        grad_norm = clip_grad_norm(self.model.parameters(), self.cfg.solver.clip_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        if grad_norm is not None:
            totals["grad_norm"] = float(grad_norm)
        return totals

    def _next_micro_batches(self, loader_iter) -> list[dict[str, Any]]:
        try:
            return [next(loader_iter) for _ in range(self.cfg.solver.grad_accum_steps)]
        except (KeyboardInterrupt, StopIteration):
            raise
        except (ValueError, OSError, RuntimeError, KeyError) as err:  # a bad file, reported by the dataset
            raise DataLoadingError(f"reading the data for step {self.step + 1} failed: {_one_line(err)}") from None

    def train(self, evaluate: bool = True) -> dict[str, Any]:
        """Train from ``self.step`` to ``solver.max_iters``; returns the final evaluation
        (``evaluate=False`` skips every evaluation, periodic ones included)."""
        cfg, s = self.cfg, self.cfg.solver
        if self.step == 0:
            self._start_fresh()
        if self.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        self._open_tensorboard()
        self._print(f"training {self._model_name()} ({self.model.num_parameters / 1e6:.2f}M parameters) on "
                    f"{len(self.train_dataset)} images, {self.world_size} process(es) on {self.device}, "
                    f"{self.precision}; steps {self.step}->{s.max_iters}, batch {s.batch_size}; output {self.output_dir}")
        self._bar = self._progress_bar()
        previous = signal.getsignal(signal.SIGINT)
        if is_main_thread():
            signal.signal(signal.SIGINT, self._on_sigint)
        loader_iter = iter(self._loader())
        t_last, window, data_time = time.perf_counter(), [], 0.0
        final: dict[str, Any] = {}
        try:
            while self.step < s.max_iters:
                t0 = time.perf_counter()
                micro = self._next_micro_batches(loader_iter)
                data_time += time.perf_counter() - t0
                values = self.train_step(micro)
                window.append(values["loss"])
                lr = max(g["lr"] for g in self.optimizer.param_groups)  # solver.lr x schedule (backbone: x multiplier)
                record = {"step": self.step, "lr": lr, **values}
                for cb in self.callbacks:
                    cb(self, self.step, record)
                if self._bar is not None:
                    self._bar.update(1)
                    self._bar.set_postfix(loss=f"{values['loss']:.3f}", lr=f"{record['lr']:.2e}")
                if self.step % cfg.log_period == 0 or self.step == s.max_iters:
                    now = time.perf_counter()
                    record.update(time_per_step=(now - t_last) / len(window), data_time=data_time / len(window),
                                  images_per_s=s.batch_size * len(window) / (now - t_last))
                    record["loss_avg"] = sum(window) / len(window)
                    self._log(record)
                    if self._bar is None:
                        self._print(f"step {self.step}/{s.max_iters}  loss {record['loss_avg']:.4f}  "
                                    f"lr {record['lr']:.2e}  {record['images_per_s']:.1f} img/s")
                    t_last, window, data_time = now, [], 0.0
                paused = time.perf_counter()  # evaluation and checkpoints stay out of the next time_per_step
                if evaluate and cfg.eval_period and self.step % cfg.eval_period == 0 and self.step < s.max_iters:
                    final = self.evaluate()
                if cfg.checkpoint_period and self.step % cfg.checkpoint_period == 0:
                    self.save_checkpoint()
                t_last += time.perf_counter() - paused
                if self._interrupted:
                    path = self.save_checkpoint()
                    self.plot_curves()
                    self._print(f"interrupted at step {self.step}: saved {path} and {self.output_dir / 'curves.png'}; "
                                f"run the same command with --resume to continue")
                    raise KeyboardInterrupt
            if evaluate:
                final = self.evaluate()
            self.save_checkpoint()
            if self.is_main:
                self.model.save_pretrained(str(self.output_dir / "model"))
                self.plot_curves()
        finally:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            if self._tensorboard is not None:
                self._tensorboard.close()
                self._tensorboard = None
            if is_main_thread():
                signal.signal(signal.SIGINT, previous)
        return final

    def _model_name(self) -> str:
        """The model's class, with the Mask2Former switches that are on (all four: "Mask2Former")."""
        name, mc = type(self.model).__name__, getattr(self.model, "config", None)
        switches = {"masked_attention": "masked attention", "multi_scale_features": "multi-scale features",
                    "cross_attention_first": "cross-attention first",
                    "learnable_query_features": "learnable query features"}
        on = [label for key, label in switches.items() if getattr(mc, key, False)]
        if len(on) == len(switches):
            return f"Mask2Former ({name} with all of Mask2Former's decoder changes)"
        return f"{name} with {', '.join(on)}" if on else name

    def _on_sigint(self, signum, frame) -> None:
        if self._interrupted:  # a second Ctrl-C leaves at once
            raise KeyboardInterrupt
        self._interrupted = True
        self._print("Ctrl-C: finishing this step and saving a checkpoint (press again to quit at once)")

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
                                        ignore_index=d.ignore_index, progress=self._bar is not None)
            record = {"step": self.step, "mIoU": results["mIoU"], "pixel_accuracy": results.get("pixel_accuracy")}
            line = f"step {self.step}: mIoU {100 * results['mIoU']:.2f}"
            if d.task != "semantic":  # panoptic: also COCO PQ; instance: also COCO mask AP (maskformer.evaluation)
                scores = self._evaluate_task()
                results.update(scores)
                record.update(scores)
                line += "".join(f", {k} {100 * v:.2f}" for k, v in scores.items())
            self._log(record)
            self._print(f"{line} on {len(self.val_dataset)} validation images")
            self.plot_curves()
        if self.world_size > 1:
            dist.barrier()
        return results

    def _evaluate_task(self) -> dict[str, float]:
        """PQ / PQ_th / PQ_st (data.task panoptic) or AP / AP50 (instance) on the validation set, by the COCO rules."""
        import tempfile

        from .evaluation import evaluate_instance, evaluate_panoptic

        d = self.cfg.data
        kw = dict(short_edge=d.test_short_edge, max_size=d.test_max_size, device=self.device, progress=False)
        with tempfile.TemporaryDirectory() as folder:  # the COCO-format files are only a means here
            if d.task == "panoptic":
                r = evaluate_panoptic(self.model, self.val_dataset, folder, object_threshold=d.object_mask_threshold,
                                      overlap_threshold=d.overlap_threshold, **kw)
                return {"PQ": r["All"]["pq"], "PQ_th": r["Things"]["pq"], "PQ_st": r["Stuff"]["pq"]}
            r = evaluate_instance(self.model, self.val_dataset, **kw)
            return {"AP": r["AP"], "AP50": r["AP50"]}


def _plain(value: Any) -> Any:
    """Tuples and lists compare equal (JSON turns one into the other)."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _tensorboard_tag(key: str) -> str:
    if key.startswith("loss"):
        return f"train/{key}"
    if key in ("mIoU", "pixel_accuracy", "PQ", "PQ_th", "PQ_st", "AP", "AP50"):
        return f"val/{key}"
    return f"misc/{key}"
