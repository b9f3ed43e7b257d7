"""Evaluating masks at a few thousand points instead of every pixel (Mask2Former, Cheng et al. 2022).

Mask2Former showed that the mask losses can be computed on K sampled points per mask instead
of on the full-resolution masks: the matcher uses uniformly random points, the loss uses
"importance sampling" that favours points where the prediction is uncertain (logit near 0),
borrowed from PointRend (Kirillov et al. 2020). MaskFormer itself uses full masks; this module
is the optional, memory-saving variant.

Points are (x, y) pairs in [0, 1] relative to the mask's extent, so the same point can be read
from a 128x128 prediction and from its 512x512 target.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

# Chunks of at most this many target pixels are converted to float at a time, so that sampling
# from large boolean target masks never materialises all of them in float32 at once.
_MAX_CHUNK_PIXELS = 1 << 22


def point_sample(masks: Tensor, coords: Tensor) -> Tensor:
    """Bilinearly read each mask at its own points.

    Args:
        masks: [N, H, W], any dtype (bool and uint8 target masks are converted to float).
        coords: [N, P, 2] or [P, 2] (shared by all masks), (x, y) in [0, 1].
            Pixel centres sit at (i + 0.5) / W, as with ``align_corners=False``; points outside
            the mask read 0.

    Returns:
        [N, P] float values at the points (differentiable w.r.t. float ``masks``).
    """
    num_masks, height, width = masks.shape
    if coords.dim() == 2:
        coords = coords.expand(num_masks, -1, -1)  # [N, P, 2]
    chunk = max(1, _MAX_CHUNK_PIXELS // (height * width))
    values = []
    for start in range(0, num_masks, chunk):
        part = masks[start : start + chunk, None]  # [n, 1, H, W]
        if not part.is_floating_point():
            part = part.float()
        grid = 2.0 * coords[start : start + chunk, :, None, :] - 1.0  # [n, P, 1, 2] in [-1, 1]
        sampled = F.grid_sample(part, grid.to(part.dtype), mode="bilinear", align_corners=False)
        values.append(sampled[:, 0, :, 0])  # [n, P]
    if not values:
        return masks.new_zeros((0, coords.shape[-2]), dtype=torch.float32)
    return torch.cat(values)


@torch.no_grad()
def uncertain_point_coords(
    logits: Tensor, num_points: int, oversample_ratio: float = 3.0, importance_sample_ratio: float = 0.75
) -> Tensor:
    """Points where each mask's logit is closest to 0, mixed with uniformly random points.

    Draws ``oversample_ratio * num_points`` uniform candidates per mask, keeps the
    ``importance_sample_ratio * num_points`` most uncertain (largest ``-|logit|``), and fills
    the rest with fresh uniform points, so that no region is starved of supervision.

    Args:
        logits: [N, h, w] mask logits.

    Returns:
        [N, num_points, 2] coordinates in [0, 1].
    """
    num_masks = logits.shape[0]
    num_candidates = int(num_points * oversample_ratio)
    num_uncertain = int(num_points * importance_sample_ratio)
    candidates = torch.rand(num_masks, num_candidates, 2, device=logits.device)  # [N, C, 2]
    uncertainty = -point_sample(logits.float(), candidates).abs()  # [N, C]
    top = uncertainty.topk(num_uncertain, dim=1).indices  # [N, num_uncertain]
    chosen = candidates.gather(1, top[..., None].expand(-1, -1, 2))  # [N, num_uncertain, 2]
    random = torch.rand(num_masks, num_points - num_uncertain, 2, device=logits.device)
    return torch.cat([chosen, random], dim=1)  # [N, num_points, 2]
