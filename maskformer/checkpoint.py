"""Training checkpoints: atomic writes, the random state, and finding the latest good checkpoint.

A run's ``checkpoints/`` folder holds ``step_XXXXXXX.pt`` files and ``last_checkpoint``, a one-line
pointer to the newest. Every file is written to a temporary name, flushed and renamed, so a crash
leaves the old file or the new one, never half of one; a checkpoint that is damaged anyway (a
copy cut short, a disk error) is reported by :func:`load_latest`, which falls back to the previous
good one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["atomic_write", "atomic_save", "rng_state", "set_rng_state", "CheckpointError", "DiskFullError",
           "list_checkpoints", "load_latest", "load_checkpoint"]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file and what to do."""


class DiskFullError(OSError):
    """No space left on the device while writing ``path``."""


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Call ``write(f)`` on a temporary file in ``path``'s folder, flush it to disk, then rename it over
    ``path``: a crash at any moment leaves either the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if _is_disk_full(err):
            raise DiskFullError(errno.ENOSPC, f"disk full: cannot write {path}; free space on that disk or choose "
                                f"another --output-dir") from None
        raise


def _is_disk_full(err: BaseException) -> bool:
    while err is not None:
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(err):  # torch.save wraps the OSError in a RuntimeError
            return True
        err = err.__cause__ or err.__context__
    return False


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` that never leaves a half-written file (see :func:`atomic_write`)."""
    atomic_write(Path(path), lambda f: torch.save(obj, f))


def rng_state() -> dict[str, Any]:
    """The global random state of torch, Python and numpy (and CUDA), as tensors ``weights_only`` can load."""
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, seq, gauss = state["python"]
    random.setstate((version, tuple(seq), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def list_checkpoints(directory: Path) -> list[Path]:
    """The ``step_*.pt`` files of a checkpoint folder, oldest first."""
    return sorted(Path(directory).glob("step_*.pt"))


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint's state dict; :class:`CheckpointError` naming the file when it is damaged or foreign."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # a truncated file, a foreign pickle ...
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({str(err).splitlines()[0][:200]})") from None
    missing = [k for k in ("model", "optimizer", "scheduler", "step", "rng") if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"{path} is not a training checkpoint of this package (missing {missing})")
    return state


def load_latest(directory: str | os.PathLike, device: torch.device | str = "cpu",
                warn: Callable[[str], None] = print) -> tuple[dict[str, Any], Path] | None:
    """The newest loadable checkpoint of ``directory`` and its path; None when there is none at all.

    The pointer file names the newest; when that one (or the pointer) is damaged, ``warn`` says so
    and older ones are tried, newest first. When checkpoints exist but none loads,
    :class:`CheckpointError` says so in one line.
    """
    directory = Path(directory)
    candidates = list(reversed(list_checkpoints(directory)))
    pointer = directory / "last_checkpoint"
    if pointer.exists():
        named = directory / pointer.read_text(errors="replace").strip()
        if named.is_file():
            candidates = [named] + [c for c in candidates if c != named]
        else:
            warn(f"{pointer} names {named.name}, which does not exist; looking for an older checkpoint")
    if not candidates:
        return None
    problems = []
    for path in candidates:
        try:
            state = load_checkpoint(path, device)
        except CheckpointError as err:
            problems.append(str(err))
            warn(f"{err}; trying an older checkpoint")
            continue
        return state, path
    raise CheckpointError(f"no usable checkpoint in {directory}: {len(problems)} found, all damaged; start again "
                          f"without --resume into a new --output-dir, or with --overwrite")
