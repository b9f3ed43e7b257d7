"""Hungarian matching between MaskFormer's predictions and the ground-truth segments.

MaskFormer predicts a fixed set of Q (mask, class) pairs; an image has N ground-truth segments,
usually N < Q. Training needs to know which prediction answers for which segment, so each image
solves a bipartite matching: the Q x N cost of every pairing is computed at once, then
``scipy.optimize.linear_sum_assignment`` picks the one-to-one assignment of least total cost.
Unmatched predictions are later trained to say "no object". The cost mirrors the loss:

    C = cost_mask * focal(mask, target) + cost_class * (-p[target class]) + cost_dice * dice(mask, target)

:class:`FixedMatcher` is the paper's ablation without a search: query k always answers class k.
"""

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from maskformer.point_sampling import point_sample


def pairwise_sigmoid_focal_cost(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """The sigmoid focal loss of every prediction against every target, averaged over pixels.

    A pixel's loss is ``pos`` where the target is 1 and ``neg`` where it is 0, so the sum over
    pixels for all pairs is ``pos @ t.T + neg @ (1 - t).T``: two matrix products instead of a
    Q x N x P tensor.

    Args:
        logits: [Q, P] predicted mask logits at P pixels (or points).
        targets: [N, P] binary (or soft) target masks at the same pixels.

    Returns:
        [Q, N] costs.
    """
    prob = logits.sigmoid()
    bce_neg = F.softplus(logits)  # [Q, P] BCE of each pixel if its target is 0
    bce_pos = bce_neg - logits  # softplus(-x): BCE if the target is 1
    pos = bce_pos.mul_((1 - prob) ** gamma)  # [Q, P] focal loss if the target is 1, before alpha
    neg = bce_neg.mul_(prob**gamma)  # [Q, P] ... if it is 0, before 1 - alpha
    return (alpha * (pos @ targets.T) + (1 - alpha) * (neg @ (1 - targets).T)) / logits.shape[1]  # [Q, N]


def pairwise_sigmoid_bce_cost(logits: Tensor, targets: Tensor) -> Tensor:
    """The binary cross-entropy of every prediction against every target, averaged over pixels
    (Mask2Former's mask cost): ``softplus(-x) @ t.T + softplus(x) @ (1 - t).T``, as the focal cost.

    Args:
        logits: [Q, P] predicted mask logits.
        targets: [N, P] target masks.

    Returns:
        [Q, N] costs.
    """
    bce_neg = F.softplus(logits)  # [Q, P] BCE of each pixel if its target is 0
    bce_pos = bce_neg - logits  # softplus(-x): BCE if the target is 1
    return (bce_pos @ targets.T + bce_neg @ (1 - targets).T) / logits.shape[1]  # [Q, N]


# The mask cost beside dice, named like the loss's term: the matching cost mirrors the loss.
MASK_COSTS = {"focal": pairwise_sigmoid_focal_cost, "bce": pairwise_sigmoid_bce_cost}


def pairwise_dice_cost(logits: Tensor, targets: Tensor) -> Tensor:
    """1 - soft Dice coefficient (with +1 smoothing) of every prediction against every target.

    Args:
        logits: [Q, P] predicted mask logits.
        targets: [N, P] target masks.

    Returns:
        [Q, N] costs in [0, 1].
    """
    prob = logits.sigmoid()
    intersection = prob @ targets.T  # [Q, N]
    sizes = prob.sum(-1)[:, None] + targets.sum(-1)[None, :]  # [Q, N]
    return 1 - (2 * intersection + 1) / (sizes + 1)


def assign(cost: Tensor) -> tuple[Tensor, Tensor]:
    """Solve the assignment for one [Q, N] cost matrix, tolerating NaN and inf entries.

    Non-finite entries (diverged or overflowed predictions) are replaced by a finite value large
    enough that any assignment using fewer of them is cheaper, so they are matched only when
    there is no alternative, and scipy never sees a NaN.

    Returns:
        (query_idx, target_idx), int64 [min(Q, N)] each, sorted by query index.
    """
    cost = cost.detach().to("cpu", torch.float64)
    finite = cost.isfinite()
    if not finite.all():
        if finite.any():
            high, low = cost[finite].max(), cost[finite].min()
            replacement = high + (high - low + 1) * min(cost.shape)
        else:
            replacement = 0.0
        cost = torch.where(finite, cost, replacement)
    query_idx, target_idx = linear_sum_assignment(cost.numpy())
    return torch.as_tensor(query_idx, dtype=torch.int64), torch.as_tensor(target_idx, dtype=torch.int64)


class HungarianMatcher(nn.Module):
    """One-to-one assignment of predictions to ground-truth segments, per image, without gradient.

    Args:
        cost_class: weight of the classification cost, -softmax(logits)[target class].
        cost_mask: weight of the sigmoid focal cost between masks (20 in the paper).
        mask_cost: "focal" (the paper) or "bce" (Mask2Former), the same function as the loss's ``loss_mask``.
        cost_dice: weight of the dice cost between masks.
        num_points: None (the paper) compares masks at every pixel of the prediction, with the
            targets resized to the prediction's resolution by nearest neighbour; an integer
            compares them at that many uniformly random points instead (Mask2Former; 12544),
            the same points for all queries, targets and decoder layers of an image.
    """

    def __init__(
        self, cost_class: float = 1.0, cost_mask: float = 20.0, cost_dice: float = 1.0, num_points: int | None = None,
        mask_cost: str = "focal",
    ):
        super().__init__()
        if mask_cost not in MASK_COSTS:
            raise ValueError(f"HungarianMatcher: mask_cost={mask_cost!r}; must be one of {sorted(MASK_COSTS)}")
        self.mask_cost = mask_cost
        if cost_class == 0 and cost_mask == 0 and cost_dice == 0:
            raise ValueError("HungarianMatcher: all three cost weights are 0; give at least one a positive weight")
        self.cost_class = cost_class
        self.cost_mask = cost_mask
        self.cost_dice = cost_dice
        self.num_points = num_points

    def extra_repr(self) -> str:
        return (
            f"cost_class={self.cost_class}, cost_mask={self.cost_mask}, cost_dice={self.cost_dice}, "
            f"num_points={self.num_points}, mask_cost={self.mask_cost!r}"
        )

    def cost_matrix(self, class_logits: Tensor, mask_logits: Tensor, labels: Tensor, target_masks: Tensor) -> Tensor:
        """The weighted matching cost of one image.

        Args:
            class_logits: [Q, K+1] class logits (last class = no object).
            mask_logits: [Q, P] mask logits at P pixels or points.
            labels: int64 [N] target classes.
            target_masks: [N, P] float target masks at the same pixels or points.

        Returns:
            [Q, N] costs.
        """
        # As in DETR, -p replaces the NLL: it is bounded, which keeps it commensurate with the mask costs.
        cost_class = -class_logits.softmax(-1)[:, labels]  # [Q, N]
        cost_mask = MASK_COSTS[self.mask_cost](mask_logits, target_masks)  # [Q, N]
        cost_dice = pairwise_dice_cost(mask_logits, target_masks)  # [Q, N]
        return self.cost_mask * cost_mask + self.cost_class * cost_class + self.cost_dice * cost_dice

    @torch.no_grad()
    def forward(
        self, outputs: Mapping[str, Tensor], targets: Sequence[Mapping[str, Tensor]]
    ) -> list[tuple[Tensor, Tensor]]:
        """Match one decoder layer's predictions to the targets.

        Args:
            outputs: ``pred_logits`` [B, Q, K+1] and ``pred_masks`` [B, Q, h, w] (logits);
                other keys (``aux_outputs``) are ignored.
            targets: B dicts with ``labels`` int64 [N_b] and ``masks`` [N_b, H_b, W_b] (0/1, any dtype).

        Returns:
            B pairs ``(query_idx, target_idx)`` of int64 [min(Q, N_b)] CPU tensors: prediction
            ``query_idx[i]`` is matched to target ``target_idx[i]``.
        """
        return self.match_layers([outputs], targets)[0]

    @torch.no_grad()
    def match_layers(
        self, layers: Sequence[Mapping[str, Tensor]], targets: Sequence[Mapping[str, Tensor]]
    ) -> list[list[tuple[Tensor, Tensor]]]:
        """``[self(layer, targets) for layer in layers]``, resizing (or sampling) the targets once.

        Deep supervision matches each of the 6 decoder layers on its own; the targets are the
        same for all of them.
        """
        batch_size, _, height, width = layers[0]["pred_masks"].shape
        matches = [[None] * batch_size for _ in layers]
        device = layers[0]["pred_masks"].device
        # Costs in float32 whatever the autocast: sums over 16k pixels overflow float16.
        with torch.autocast(device_type=device.type, enabled=False):
            for b, target in enumerate(targets):
                labels, masks = target["labels"], target["masks"]
                if len(labels) == 0:  # nothing to match: every query will learn "no object"
                    empty = torch.zeros(0, dtype=torch.int64)
                    for layer_matches in matches:
                        layer_matches[b] = (empty, empty)
                    continue
                if self.num_points is None:
                    if masks.dtype == torch.bool:
                        masks = masks.to(torch.uint8)  # nearest interpolation has no bool kernel
                    small = F.interpolate(masks[:, None], size=(height, width), mode="nearest")  # [N, 1, h, w]
                    target_masks = small.flatten(1).float()  # [N, h*w]
                else:
                    points = torch.rand(self.num_points, 2, device=device)  # [P, 2], shared by the image
                    target_masks = point_sample(masks, points)  # [N, P]
                for layer, layer_matches in zip(layers, matches):
                    class_logits = layer["pred_logits"][b].float()  # [Q, K+1]
                    mask_logits = layer["pred_masks"][b].float()  # [Q, h, w]
                    if self.num_points is None:
                        mask_logits = mask_logits.flatten(1)  # [Q, h*w]
                    else:
                        mask_logits = point_sample(mask_logits, points)  # [Q, P]
                    cost = self.cost_matrix(class_logits, mask_logits, labels, target_masks)  # [Q, N]
                    layer_matches[b] = assign(cost)
        return matches


class FixedMatcher(nn.Module):
    """Fixed matching (paper §4.3, Table 4): query k always answers the segment of class k.

    With one query per class (Q = K) and one target mask per class present (semantic targets), this
    is per-pixel classification's assignment spoken in mask classification's terms: no cost, no
    search. The queries of classes absent from an image learn "no object". Table 4 (ADE20K, R50):
    43.7 mIoU and 30.3 PQ^St, against 44.2 and 33.4 with bipartite matching.

    Same interface as :class:`HungarianMatcher`: ``forward`` for one decoder layer, ``match_layers``
    for several; the assignment is the same for every layer.
    """

    @torch.no_grad()
    def forward(
        self, outputs: Mapping[str, Tensor], targets: Sequence[Mapping[str, Tensor]]
    ) -> list[tuple[Tensor, Tensor]]:
        """``(query_idx, target_idx)`` per image: query ``labels[j]`` <-> target ``j``, sorted by query.

        Args:
            outputs: ``pred_logits`` [B, Q, K+1] (only Q is read); other keys are ignored.
            targets: B dicts with ``labels`` int64 [N_b], each class at most once.
        """
        num_queries = outputs["pred_logits"].shape[1]
        matches = []
        for target in targets:
            labels = target["labels"].detach().to("cpu", torch.int64)
            if len(labels) and (labels.max() >= num_queries or len(labels.unique()) != len(labels)):
                raise ValueError(
                    f"maskformer/matcher.py: fixed matching gives query k the mask of class k, so it needs "
                    f"num_queries = num_classes ({num_queries} queries here) and at most one target per class; "
                    f"got labels {labels.tolist()}")
            query_idx, target_idx = labels.sort()
            matches.append((query_idx, target_idx))
        return matches

    def match_layers(
        self, layers: Sequence[Mapping[str, Tensor]], targets: Sequence[Mapping[str, Tensor]]
    ) -> list[list[tuple[Tensor, Tensor]]]:
        """``[self(layer, targets) for layer in layers]``: every layer gets the same fixed assignment."""
        matches = self(layers[0], targets)
        return [matches for _ in layers]
