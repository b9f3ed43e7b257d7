"""The original optimiser and schedule: AdamW with per-parameter groups, warm-up + poly decay, and
full-model gradient clipping (the original's ``SOLVER.*`` keys and ``build_optimizer`` in facebookresearch/MaskFormer's
``train_net.py``).

What the original configs do (detectron2's ``build_optimizer`` as MaskFormer's ``train_net.py`` sets it up):

- the backbone's learning rate is ``lr x backbone_multiplier`` (0.1 for ResNet, 1.0 for Swin);
- normalisation layers (BatchNorm, GroupNorm, LayerNorm) get ``weight_decay_norm`` (0.0),
  ``nn.Embedding`` tables (the learned queries) ``weight_decay_embed`` (0.0), and Swin's
  ``relative_position_bias_table`` / ``absolute_pos_embed`` no weight decay: decaying a table
  of biases towards 0 would wash out what attention learned about relative position;
- everything else, biases included, gets ``weight_decay``;
- the learning rate follows ``lr x warmup(t) x (1 - t / max_iters) ** power`` (detectron2's
  ``WarmupPolyLR``), with a linear warm-up from ``warmup_factor`` to 1 over ``warmup_iters``;
- before each step the gradients of the whole model are rescaled so that their joint L2 norm is
  at most ``clip_grad_norm`` (``CLIP_TYPE: full_model``, ``CLIP_VALUE: 0.01``).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

import torch
from torch import nn

__all__ = ["NORM_LAYERS", "NO_DECAY_PARAMETERS", "param_groups", "build_optimizer", "warmup_poly", "build_scheduler"]

NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)
NO_DECAY_PARAMETERS = ("relative_position_bias_table", "absolute_pos_embed")  # orig train_net.py


def param_groups(model: nn.Module, lr: float, weight_decay: float, backbone_multiplier: float = 1.0,
                 weight_decay_norm: float = 0.0, weight_decay_embed: float = 0.0) -> list[dict]:
    """Optimizer parameter groups, one per distinct ``(lr, weight_decay)``.

    Each group also carries ``names`` (the parameters' qualified names), so that a reader can
    check which parameter got what: ``[g["names"] for g in groups if g["weight_decay"] == 0]``.
    Parameters with ``requires_grad=False`` are left out.
    """
    groups: dict[tuple[float, float], dict] = {}
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:  # shared parameters go in once
                continue
            seen.add(id(param))
            full_name = f"{module_name}.{name}" if module_name else name
            group_lr = lr * backbone_multiplier if full_name.startswith("backbone.") else lr
            if isinstance(module, NORM_LAYERS):
                decay = weight_decay_norm
            elif isinstance(module, nn.Embedding):
                decay = weight_decay_embed
            elif name in NO_DECAY_PARAMETERS:
                decay = 0.0
            else:
                decay = weight_decay
            group = groups.setdefault((group_lr, decay), {"params": [], "names": [], "lr": group_lr,
                                                          "weight_decay": decay})
            group["params"].append(param)
            group["names"].append(full_name)
    return list(groups.values())


def build_optimizer(model: nn.Module, lr: float, weight_decay: float, backbone_multiplier: float = 1.0,
                    weight_decay_norm: float = 0.0, weight_decay_embed: float = 0.0) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups` (orig ``SOLVER.OPTIMIZER: ADAMW``, default betas and eps)."""
    groups = param_groups(model, lr, weight_decay, backbone_multiplier, weight_decay_norm, weight_decay_embed)
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


def warmup_poly(step: int, max_iters: int, power: float = 0.9, warmup_iters: int = 0,
                warmup_factor: float = 1.0) -> float:
    """The learning-rate multiplier at iteration ``step`` (0-based): linear warm-up from
    ``warmup_factor`` to 1 over ``warmup_iters``, times ``(1 - step / max_iters) ** power``."""
    warmup = 1.0
    if step < warmup_iters:
        alpha = step / warmup_iters
        warmup = warmup_factor * (1 - alpha) + alpha
    return warmup * (1 - min(step, max_iters) / max_iters) ** power


def warmup_step(step: int, steps: Sequence[int], gamma: float = 0.1, warmup_iters: int = 0,
                warmup_factor: float = 1.0) -> float:
    """detectron2's ``WarmupMultiStepLR`` multiplier at iteration ``step``: the same linear warm-up, times
    ``gamma`` once for every milestone in ``steps`` already reached (``bisect_right``)."""
    warmup = 1.0
    if step < warmup_iters:
        alpha = step / warmup_iters
        warmup = warmup_factor * (1 - alpha) + alpha
    return warmup * gamma ** bisect.bisect_right(list(steps), step)


def build_scheduler(optimizer: torch.optim.Optimizer, max_iters: int, power: float = 0.9, warmup_iters: int = 0,
                    warmup_factor: float = 1.0, schedule: str = "poly", steps: Sequence[int] = (),
                    gamma: float = 0.1) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` of :func:`warmup_poly` (``schedule="poly"``, the ADE20K recipes) or :func:`warmup_step`
    (``"step"``, the COCO recipes); call ``scheduler.step()`` once per optimiser step."""
    if schedule == "step":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_step(step, steps, gamma, warmup_iters, warmup_factor))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_poly(step, max_iters, power, warmup_iters, warmup_factor))


def clip_grad_norm(parameters: Iterable[torch.Tensor], max_norm: float | None) -> torch.Tensor | None:
    """Full-model clipping: rescale all gradients together so their joint L2 norm is <= ``max_norm``.

    Returns the norm before clipping (None when clipping is off), which the trainer logs.
    """
    if not max_norm:
        return None
    return torch.nn.utils.clip_grad_norm_(list(parameters), max_norm)
