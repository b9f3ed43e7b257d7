"""ResNet-50/101 as MaskFormer uses it: four feature maps at strides 4, 8, 16, 32.

The original (detectron2) ResNet puts the stride of each downsampling bottleneck in its 3x3 conv
(``STRIDE_IN_1X1: False``, the "ResNet v1.5" layout that torchvision and timm also use) and freezes
BatchNorm: its statistics and affine parameters are constants while training, because detection-size
batches per GPU are too small to estimate them. Module names follow torchvision/timm (``conv1``,
``layer1.0.conv2``, ...) so their ImageNet weights load without renaming.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine parameters (all buffers, never trained).

    With the statistics fixed, BatchNorm is a per-channel scale and shift:
    ``y = x * s + (bias - running_mean * s)`` with ``s = weight / sqrt(running_var + eps)``, the same
    numbers as ``nn.BatchNorm2d`` in eval mode up to float rounding. ``inplace=True`` writes them into
    ``x`` (like ``nn.ReLU(inplace=True)``); the ResNet does, since each norm follows a conv whose
    output nothing else reads: no new map per norm, about 1% of ResNet-50's forward time.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, inplace: bool = False):
        super().__init__()
        self.eps = eps
        self.inplace = inplace
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        scale, shift = scale.view(-1, 1, 1), shift.view(-1, 1, 1)  # broadcast over [B, C, H, W]
        return x.mul_(scale).add_(shift) if self.inplace else torch.addcmul(shift, x, scale)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}" + (", inplace=True" if self.inplace else "")


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (carries the stride) -> 1x1 expand, plus a projected shortcut when shapes change."""

    expansion = 4

    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: type[nn.Module]):
        super().__init__()
        mid = out_ch // self.expansion
        self.conv1 = nn.Conv2d(in_ch, mid, 1, bias=False)
        self.bn1 = norm(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False)
        self.bn2 = norm(mid)
        self.conv3 = nn.Conv2d(mid, out_ch, 1, bias=False)
        self.bn3 = norm(out_ch)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), norm(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        x = F.relu(self.bn2(self.conv2(x)), inplace=True)
        x = self.bn3(self.conv3(x))
        return F.relu(x.add_(shortcut), inplace=True)


class ResNet(nn.Module):
    """Stem (7x7 conv stride 2 + 3x3 max-pool stride 2) and four stages of bottlenecks.

    Args:
        depths: blocks per stage, (3, 4, 6, 3) for ResNet-50 and (3, 4, 23, 3) for ResNet-101.
        stem_channels: width of the stem (64).
        channels: output widths of res2..res5 (256, 512, 1024, 2048).
        frozen_bn: use :class:`FrozenBatchNorm2d` (the original) instead of trainable ``nn.BatchNorm2d``.

    ``forward(x)`` takes ``[B, 3, H, W]`` and returns the list ``[res2, res3, res4, res5]`` with shapes
    ``[B, channels[i], ceil(H / 2**(i+2)), ceil(W / 2**(i+2))]``.
    """

    def __init__(self, depths=(3, 4, 6, 3), stem_channels=64, channels=(256, 512, 1024, 2048), frozen_bn=True):
        super().__init__()
        norm = partial(FrozenBatchNorm2d, inplace=True) if frozen_bn else nn.BatchNorm2d
        self.channels = tuple(channels)
        self.strides = (4, 8, 16, 32)
        self.conv1 = nn.Conv2d(3, stem_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm(stem_channels)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_ch = stem_channels
        for i, (depth, out_ch) in enumerate(zip(depths, channels)):
            stride = 1 if i == 0 else 2  # res2 keeps the stem's stride 4
            blocks = [Bottleneck(in_ch if j == 0 else out_ch, out_ch, stride if j == 0 else 1, norm) for j in range(depth)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            in_ch = out_ch

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = x.contiguous(memory_format=torch.channels_last)  # oneDNN's convs are faster on NHWC; maps stay NHWC
        x = self.maxpool(F.relu(self.bn1(self.conv1(x)), inplace=True))  # [B, C_stem, H/4, W/4]
        features = []
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)  # [B, channels[i-1], H/2**(i+1), W/2**(i+1)]
            features.append(x)
        return features
