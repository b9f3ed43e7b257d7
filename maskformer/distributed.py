"""Process set-up: one process, or one per GPU (or CPU worker) under ``torchrun``."""

from __future__ import annotations

import os
import threading

import torch
import torch.distributed as dist

__all__ = ["init_distributed", "is_main_thread"]


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


def is_main_thread() -> bool:
    """Signal handlers can only be installed from the main thread (not, e.g., from a notebook's worker)."""
    return threading.current_thread() is threading.main_thread()
