"""MaskFormer's training loss: match, then supervise each matched (prediction, segment) pair.

For every decoder output (the last layer and, with deep supervision, the 5 earlier ones):

    loss_ce   = cross-entropy over K+1 classes for all Q queries; unmatched queries target
                "no object", whose class weight is eos_coef (0.1)
    loss_mask = sigmoid focal loss of each matched mask, mean over pixels, summed over masks / num_masks
    loss_dice = dice loss of each matched mask, summed over masks / num_masks

Masks are compared at the (padded) target resolution: the stride-4 predictions are upsampled
bilinearly. ``num_masks`` is the batch's number of target segments, averaged over processes.
The total is ``1 * loss_ce + 20 * loss_mask + 1 * loss_dice`` summed over layers
(:meth:`MaskFormerLoss.total_loss`).

A term is one function and one weight, as in the original's loss map (``SetCriterion.get_loss`` in
``mask_former/modeling/criterion.py``): ``loss_ce`` is :meth:`MaskFormerLoss._classification_loss`, and
each mask term names a per-mask function of :data:`MASK_TERMS` (``mask_terms={"loss_mask": "focal",
"loss_dice": "dice"}``, or ``"bce"`` for Mask2Former's binary cross-entropy); ``weight_dict`` holds the
weights. A new mask term is one function in :data:`MASK_TERMS` and one weight.

Full-mask focal + dice has two implementations with the same numbers: the fused
:func:`upsampled_mask_losses` (default: one mask at a time, gradient by hand, a fraction of the memory)
and the plain formulas on ``interpolate``-d logits under autograd (``fused=False``), the one to read.

Gradient accumulation: :meth:`MaskFormerLoss.normalisers` computes ``num_masks`` and the
cross-entropy's class-weight total once over all micro-batches of an optimiser step; passed to
every micro-batch's loss, each one is that micro-batch's share of the full batch's loss, so the
micro-batch losses (and gradients) sum to exactly those of the full batch.
"""

import re
from collections.abc import Mapping, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from maskformer.matcher import FixedMatcher, HungarianMatcher
from maskformer.point_sampling import point_sample, uncertain_point_coords


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Focal loss (Lin et al. 2017) of each mask, averaged over its pixels.

    ``alpha_t * (1 - p_t) ** gamma * BCE``: the factor (1 - p_t)^gamma silences the many pixels
    that are already right, so the loss is driven by the uncertain ones.

    Args:
        logits: [M, P] mask logits.
        targets: [M, P] targets in [0, 1].

    Returns:
        [M] per-mask losses.
    """
    prob = logits.sigmoid()
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")  # [M, P]
    p_t = prob * targets + (1 - prob) * (1 - targets)  # probability given to the right answer
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (alpha_t * (1 - p_t) ** gamma * bce).mean(-1)


def sigmoid_bce_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Binary cross-entropy of each mask, averaged over its pixels (Mask2Former's mask term).

    Args:
        logits: [M, P] mask logits.
        targets: [M, P] targets in [0, 1].

    Returns:
        [M] per-mask losses.
    """
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(-1)


def dice_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """1 - soft Dice coefficient of each mask, with +1 smoothing so empty masks are defined.

    Args:
        logits: [M, P] mask logits.
        targets: [M, P] targets in [0, 1].

    Returns:
        [M] per-mask losses in [0, 1].
    """
    prob = logits.sigmoid()
    intersection = (prob * targets).sum(-1)  # [M]
    return 1 - (2 * intersection + 1) / (prob.sum(-1) + targets.sum(-1) + 1)


# The per-mask functions a mask term can name: (logits [M, P], targets [M, P]) -> [M].
MASK_TERMS = {"focal": sigmoid_focal_loss, "bce": sigmoid_bce_loss, "dice": dice_loss}
# config.mask_loss -> {loss term: function name}, the terms beside loss_ce.
MASK_LOSSES = {"focal_dice": {"loss_mask": "focal", "loss_dice": "dice"},
               "bce_dice": {"loss_mask": "bce", "loss_dice": "dice"}}


def full_mask_losses(logits: Tensor, targets: Tensor, target_idx: Tensor, terms: Mapping[str, str],
                     fused: bool = True) -> dict[str, Tensor]:
    """Each term of ``terms`` for each prediction against its target, the logits upsampled to the targets' size.

    Args:
        logits: [M, h, w] low-resolution mask logits.
        targets: [N, H, W] binary target masks (nonzero = inside).
        target_idx: int64 [M], the target of each prediction.
        terms: {loss name: function name in :data:`MASK_TERMS`}, e.g. ``{"loss_mask": "focal", "loss_dice": "dice"}``.
        fused: use :func:`upsampled_mask_losses` when the terms are focal and dice; False (or other terms)
            runs the plain formulas on ``F.interpolate``-d logits, which keeps every full-size tensor for backward.

    Returns:
        {loss name: [M] per-mask losses}.
    """
    if fused and sorted(terms.values()) == ["dice", "focal"]:
        focal, dice = upsampled_mask_losses(logits, targets, target_idx)
        return {name: focal if function == "focal" else dice for name, function in terms.items()}
    upsampled = F.interpolate(logits.float()[:, None], size=targets.shape[-2:], mode="bilinear",
                              align_corners=False)  # [M, 1, H, W]
    flat_logits = upsampled.flatten(1)  # [M, H*W]
    flat_targets = targets[target_idx].flatten(1).to(flat_logits.dtype)  # [M, H*W]
    return {name: MASK_TERMS[function](flat_logits, flat_targets) for name, function in terms.items()}


class _UpsampledMaskLosses(torch.autograd.Function):
    """Focal and dice losses of bilinearly upsampled logits against full-size binary targets.

    Equal to ``sigmoid_focal_loss`` / ``dice_loss`` of ``interpolate(logits)``, but one mask at
    a time, so the full-size intermediates (1 MB each at 512x512) stay in the CPU's cache, and
    with the gradient w.r.t. the low-resolution logits computed in the same pass, by hand from
    the closed forms below, and kept at low resolution. Autograd on the plain formulas keeps
    about ten full-size tensors per mask alive until backward.

    With t in {0, 1} and z = x * (1 - 2t) (the logit of the wrong answer), q = sigmoid(z) is
    1 - p_t and softplus(z) is the BCE, so the focal term is alpha_t * q^gamma * softplus(z) and

        d focal / dx = ((1 - alpha) - t) * q^gamma * (gamma * (1 - q) * softplus(z) + q)

    For dice, p = sigmoid(x) is q off the target and 1 - q on it; with I = sum(p t),
    D = sum(p) + sum(t) + 1:  d dice / dx = p (1 - p) ((2I + 1) / D^2 - 2t / D).
    """

    @staticmethod
    def forward(ctx, logits, targets, target_idx, alpha, gamma, with_grad):
        num_pairs, height, width = logits.shape
        size = targets.shape[-2:]
        num_pixels = size.numel()
        focal, dice = logits.new_zeros(num_pairs), logits.new_zeros(num_pairs)
        grads = logits.new_zeros(2, num_pairs, height, width) if with_grad else None  # d focal, d dice
        current = None
        sorted_targets, order = target_idx.sort()
        for i, j in zip(order.tolist(), sorted_targets.tolist()):  # grouped by target, to prepare each once
            if j != current:
                current = j
                t = targets[j].to(logits.dtype)  # [H, W]
                t_flat, target_area = t.view(-1), t.sum()
                sign = 1 - 2 * t
                focal_coef = ((1 - alpha) - t) / num_pixels  # alpha_t * (1 - 2t) / HW
            x = F.interpolate(logits[i, None, None], size=size, mode="bilinear", align_corners=False)[0, 0]  # [H, W]
            z = x.mul_(sign)
            q = torch.sigmoid(z)  # 1 - p_t
            bce = F.softplus(z)
            q_gamma = q.pow(gamma)
            per_pixel = q_gamma * bce  # (1 - p_t)^gamma * BCE, before alpha_t
            on_target = per_pixel.view(-1) @ t_flat
            focal[i] = ((1 - alpha) * (per_pixel.sum() - on_target) + alpha * on_target) / num_pixels

            q_on_target = q.view(-1) @ t_flat
            intersection = target_area - q_on_target  # sum(p t)
            denominator = q.sum() - 2 * q_on_target + 2 * target_area + 1  # sum(p) + sum(t) + 1
            dice[i] = 1 - (2 * intersection + 1) / denominator
            if not with_grad:
                continue

            grad_hi = logits.new_empty(2, *size)  # [2, H, W]: d focal / dx, d dice / dx
            d_focal, d_dice = grad_hi
            torch.neg(q, out=d_focal).add_(1)  # 1 - q
            torch.mul(q, d_focal, out=d_dice)  # q (1 - q) = p (1 - p)
            d_focal.mul_(bce)
            torch.add(q, d_focal, alpha=gamma, out=d_focal)
            d_focal.mul_(q_gamma).mul_(focal_coef)
            d_dice.mul_((2 * intersection + 1) / denominator**2 - (2 / denominator) * t)
            grads[:, i] = upsample_transpose(grad_hi, (height, width))
        if with_grad:
            ctx.save_for_backward(grads)
        return focal, dice

    @staticmethod
    def backward(ctx, grad_focal, grad_dice):
        (grads,) = ctx.saved_tensors
        grad_logits = grad_focal[:, None, None] * grads[0] + grad_dice[:, None, None] * grads[1]  # [M, h, w]
        return grad_logits, None, None, None, None, None


def upsample_transpose(grad: Tensor, size: tuple[int, int]) -> Tensor:
    """The transpose of bilinear upsampling (align_corners=False) from ``size`` to grad's size.

    What autograd runs in ``interpolate``'s backward; for integer factors (stride-4 masks against
    targets padded to a multiple of 4) this separable version is about 3x faster on CPU.

    Args:
        grad: [C, H, W] gradient w.r.t. the upsampled maps.
        size: (h, w) of the maps before upsampling.

    Returns:
        [C, h, w] gradient w.r.t. the maps before upsampling.
    """
    channels, big_h, big_w = grad.shape
    height, width = size
    if big_h % height or big_w % width:
        return torch.ops.aten.upsample_bilinear2d_backward(
            grad[:, None], [big_h, big_w], [channels, 1, height, width], False
        )[:, 0]
    rows_first = _upsample_transpose_1d(grad, big_h // height, dim=1)  # [C, h, W]: whole rows at a time
    return _upsample_transpose_1d(rows_first, big_w // width, dim=2)  # [C, h, w]


def _upsample_transpose_1d(grad: Tensor, scale: int, dim: int) -> Tensor:
    """Transpose of 1-D bilinear upsampling by an integer ``scale`` along ``dim``.

    Output pixel scale*i + r sits at input coordinate i + offset_r, offset_r = (r + 0.5) / scale - 0.5,
    so it reads input i with weight 1 - |offset_r| and input i-1 (offset < 0) or i+1 (offset > 0)
    with weight |offset_r|; at the borders the index is clamped, and both weights go to i.
    """
    blocks = grad.unflatten(dim, (-1, scale))  # [..., n, scale, ...]
    n = blocks.shape[dim]
    own = torch.zeros_like(blocks.select(dim + 1, 0))  # [..., n, ...]
    to_prev, to_next = torch.zeros_like(own), torch.zeros_like(own)
    for r in range(scale):
        offset = (r + 0.5) / scale - 0.5
        part = blocks.select(dim + 1, r)
        own.add_(part, alpha=1 - abs(offset))
        if offset < 0:
            to_prev.add_(part, alpha=-offset)
        elif offset > 0:
            to_next.add_(part, alpha=offset)
    own.narrow(dim, 1, n - 1).add_(to_next.narrow(dim, 0, n - 1))
    own.narrow(dim, 0, n - 1).add_(to_prev.narrow(dim, 1, n - 1))
    own.narrow(dim, 0, 1).add_(to_prev.narrow(dim, 0, 1))  # clamped at the first pixel
    own.narrow(dim, n - 1, 1).add_(to_next.narrow(dim, n - 1, 1))  # and at the last
    return own


def upsampled_mask_losses(
    logits: Tensor, targets: Tensor, target_idx: Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> tuple[Tensor, Tensor]:
    """Per-pair focal and dice losses with the logits bilinearly upsampled to the targets' size.

    Args:
        logits: [M, h, w] low-resolution mask logits of the matched predictions.
        targets: [N, H, W] binary target masks (nonzero = inside).
        target_idx: int64 [M], the target of each prediction (a target may appear several times,
            e.g. once per decoder layer).

    Returns:
        focal [M] (mean over the H*W pixels) and dice [M], differentiable w.r.t. ``logits``.
    """
    with_grad = torch.is_grad_enabled() and logits.requires_grad
    return _UpsampledMaskLosses.apply(logits.float(), targets, target_idx, alpha, gamma, with_grad)


class MaskFormerLoss(nn.Module):
    """MaskFormer's set-prediction loss (classification + focal + dice), with deep supervision.

    Args:
        num_classes: K, the number of real classes; class K is "no object".
        matcher: the :class:`HungarianMatcher`; None builds one with the paper's costs and
            this loss's ``num_points``.
        weight_dict: weights of ``loss_ce``, ``loss_mask``, ``loss_dice``, used by
            :meth:`total_loss` for every layer; None gives the paper's 1, 20, 1.
        eos_coef: class weight of "no object" in the cross-entropy (0.1).
        num_points: None (the paper) computes the mask losses on all pixels of the padded
            target; an integer (Mask2Former: 12544) on that many points per mask, chosen by
            importance sampling. With the default fused full-mask loss this saves no memory at
            ordinary sizes: `python benchmarks/loss.py` measured 104 MiB full vs 304 MiB points
            (notebook 05 shows where the balance turns, about 1536x1536 per mask).
        oversample_ratio, importance_sample_ratio: the point sampling's candidates per point and
            share of uncertain points (Mask2Former: 3.0, 0.75).
        num_queries: Q, the model's number of queries; only :meth:`normalisers` needs it (every
            query enters the cross-entropy's divisor). ``from_config`` sets it.
        mask_terms: {loss name: function of :data:`MASK_TERMS`}; None gives the paper's
            ``{"loss_mask": "focal", "loss_dice": "dice"}``. Each name needs a weight in ``weight_dict``.
        fused: full-mask focal + dice by the fused :func:`upsampled_mask_losses` (True) or the plain
            formulas (False); see :func:`full_mask_losses`.
    """

    def __init__(
        self,
        num_classes: int,
        matcher: HungarianMatcher | None = None,
        weight_dict: Mapping[str, float] | None = None,
        eos_coef: float = 0.1,
        num_points: int | None = None,
        oversample_ratio: float = 3.0,
        importance_sample_ratio: float = 0.75,
        num_queries: int | None = None,
        mask_terms: Mapping[str, str] | None = None,
        fused: bool = True,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher if matcher is not None else HungarianMatcher(num_points=num_points)
        if weight_dict is None:
            weight_dict = {"loss_ce": 1.0, "loss_mask": 20.0, "loss_dice": 1.0}  # the paper's
        self.weight_dict = dict(weight_dict)
        self.eos_coef = eos_coef
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.num_queries = num_queries
        self.mask_terms = dict(mask_terms if mask_terms is not None else MASK_LOSSES["focal_dice"])
        unknown = sorted(set(self.mask_terms.values()) - set(MASK_TERMS))
        if unknown:
            raise ValueError(f"maskformer/loss.py: unknown mask loss functions {unknown}; known: {sorted(MASK_TERMS)}")
        missing = sorted(name for name in ("loss_ce", *self.mask_terms) if name not in self.weight_dict)
        if missing:
            raise ValueError(f"maskformer/loss.py: no weight for loss terms {missing}: weight_dict has "
                             f"{sorted(self.weight_dict)}")
        self.fused = fused
        class_weight = torch.ones(num_classes + 1)
        class_weight[-1] = eos_coef
        # Not persistent: a hyper-parameter, not a learned weight, so it stays out of checkpoints.
        self.register_buffer("class_weight", class_weight, persistent=False)

    @classmethod
    def from_config(cls, config) -> "MaskFormerLoss":
        """The loss (and its matcher) a :class:`~maskformer.MaskFormerConfig` describes: weights, eos_coef,
        points, number of queries, and the ablation switches ``matching``, ``mask_loss``, ``fused_mask_loss``."""
        mask_terms = MASK_LOSSES[config.mask_loss]
        if config.matching == "fixed":
            matcher = FixedMatcher()
        else:  # the matching cost mirrors the loss: focal or BCE for loss_mask
            matcher = HungarianMatcher(cost_class=config.class_weight, cost_mask=config.mask_weight,
                                       cost_dice=config.dice_weight, num_points=config.num_points,
                                       mask_cost=mask_terms["loss_mask"])
        weights = {"loss_ce": config.class_weight, "loss_mask": config.mask_weight, "loss_dice": config.dice_weight}
        return cls(config.num_classes, matcher, weights, config.no_object_weight, config.num_points,
                   config.oversample_ratio, config.importance_sample_ratio, config.num_queries,
                   mask_terms=mask_terms, fused=config.fused_mask_loss)

    def forward(self, outputs: Mapping, targets: Sequence[Mapping[str, Tensor]],
                normalisers: Mapping[str, float] | None = None) -> dict[str, Tensor]:
        """Compute every loss term.

        Args:
            outputs: ``pred_logits`` [B, Q, K+1], ``pred_masks`` [B, Q, h, w] (logits, stride 4) and
                optionally ``aux_outputs``, a list of such dicts for earlier decoder layers.
            targets: B dicts with ``labels`` int64 [N_b] and ``masks`` [N_b, H_b, W_b] (0/1, any
                dtype; H_b, W_b usually the padded image size).
            normalisers: the divisors ``num_masks`` and ``class_weight_total`` of the summed terms,
                from :meth:`normalisers` over all micro-batches of the optimiser step; None takes
                them from these targets alone (averaged over processes), right for a whole batch.

        Returns:
            ``loss_ce``, ``loss_mask``, ``loss_dice`` (scalars) for the last layer, and the same
            with suffixes ``_0``, ``_1``, ... for each aux output, each matched on its own.
        """
        layers = [outputs, *outputs.get("aux_outputs", [])]
        device = outputs["pred_logits"].device
        num_queries = outputs["pred_logits"].shape[1]
        matches = self.matcher.match_layers(layers, targets)
        if normalisers is None:
            num_masks, weight_total = self._normalisers(targets, num_queries, device)
        else:
            if self.num_queries is not None and num_queries != self.num_queries:
                raise ValueError(f"maskformer/loss.py: the outputs have {num_queries} queries but the normalisers "
                                 f"were computed for num_queries={self.num_queries}; build the loss with the "
                                 f"model's config (MaskFormerLoss.from_config) or pass num_queries={num_queries}")
            num_masks, weight_total = normalisers["num_masks"], normalisers["class_weight_total"]
        target_masks = _pad_and_stack([t["masks"] for t in targets], device)  # [N, H, W] bool
        offsets = [0]
        for t in targets:
            offsets.append(offsets[-1] + len(t["labels"]))

        # Gather each layer's matched predictions, and which target (row of target_masks) each one answers.
        mask_logits, target_idx = [], []
        for layer, layer_matches in zip(layers, matches):
            batch_idx = torch.cat([torch.full_like(q, b) for b, (q, _) in enumerate(layer_matches)]).to(device)
            query_idx = torch.cat([q for q, _ in layer_matches]).to(device)
            mask_logits.append(layer["pred_masks"][batch_idx, query_idx])  # [M_l, h, w]
            target_idx.append(torch.cat([t + offset for (_, t), offset in zip(layer_matches, offsets)]).to(device))

        with torch.autocast(device_type=device.type, enabled=False):
            per_layer = self._mask_losses(mask_logits, target_idx, target_masks)
            losses = {}
            for i, (layer, layer_matches, mask_terms) in enumerate(zip(layers, matches, per_layer)):
                suffix = "" if i == 0 else f"_{i - 1}"
                losses["loss_ce" + suffix] = self._classification_loss(layer["pred_logits"], targets, layer_matches,
                                                                         weight_total)
                for name, per_mask in mask_terms.items():  # [M_l] each
                    losses[name + suffix] = per_mask.sum() / num_masks
        return losses

    def batch_losses(self, outputs: Mapping, batch: Mapping,
                     normalisers: Mapping[str, float] | None = None) -> dict[str, Tensor]:
        """The losses of a collate batch (:mod:`maskformer.data.collate`): MaskFormer reads ``batch["targets"]``.
        ``normalisers``: see :meth:`forward`."""
        return self(outputs, batch["targets"], normalisers)

    def normalisers(self, batches: Sequence[Mapping]) -> dict[str, float]:
        """The divisors of one optimiser step: ``num_masks`` and ``class_weight_total`` per process.

        Summed over ``batches`` (this process's collate batches of the step, its micro-batches),
        then over processes and divided by the world size, as :meth:`forward` does for one batch.
        Passed to every micro-batch's :meth:`batch_losses`, the micro-batch losses sum to the full
        batch's loss; normalising each by its own counts instead weighs a segment of a micro-batch
        with few segments more than one of a crowded micro-batch.
        """
        if self.num_queries is None:
            raise ValueError("maskformer/loss.py: MaskFormerLoss.normalisers needs the number of queries (every "
                             "query enters the cross-entropy's divisor); build the loss with "
                             "MaskFormerLoss.from_config(config) or pass num_queries=config.num_queries")
        targets = [t for batch in batches for t in batch["targets"]]
        num_masks, weight_total = self._normalisers(targets, self.num_queries, self.class_weight.device)
        return {"num_masks": num_masks, "class_weight_total": weight_total}

    def total_loss(self, losses: Mapping[str, Tensor]) -> Tensor:
        """The weighted sum of the terms; ``loss_mask_3`` takes the weight of ``loss_mask``."""
        total = 0.0
        for name, value in losses.items():
            base = re.sub(r"_\d+$", "", name)
            if base not in self.weight_dict:
                raise KeyError(f"no weight for loss term {name!r}: weight_dict has {sorted(self.weight_dict)}")
            total = total + self.weight_dict[base] * value
        return total

    def num_masks(self, targets: Sequence[Mapping[str, Tensor]], device: torch.device) -> float:
        """Target segments per process: summed over all processes when torch.distributed is
        initialised, divided by the world size, at least 1, so every process normalises alike."""
        return self._normalisers(targets, 0, device)[0]

    def _normalisers(self, targets: Sequence[Mapping[str, Tensor]], num_queries: int,
                     device: torch.device) -> tuple[float, float]:
        """(num_masks, class-weight total) per process of ``targets``, each averaged over all processes.

        The cross-entropy is a weighted mean: the sum over queries of ``w[target] * CE`` divided by
        the sum of ``w[target]``, which is 1 per matched query (``min(N_b, Q)`` per image) and
        ``eos_coef`` per unmatched one. Like ``num_masks``, that divisor is averaged over processes
        (one all_reduce for both), so N processes compute exactly the loss and gradients of one
        process on the combined batch. The original normalises the cross-entropy per GPU; on one
        process the two are the same.
        """
        matched = [min(len(t["labels"]), num_queries) for t in targets]
        segments = float(sum(len(t["labels"]) for t in targets))
        weights = sum(m + self.eos_coef * (num_queries - m) for m in matched)
        num_masks, weight_total = mean_over_processes([segments, weights], device)
        return max(num_masks, 1.0), weight_total

    def _classification_loss(self, pred_logits: Tensor, targets: Sequence[Mapping[str, Tensor]], matches,
                             weight_total: float) -> Tensor:
        """Weighted cross-entropy of all queries; unmatched ones target class K (no object).
        ``weight_total`` is the divisor of the weighted mean (see :meth:`_normalisers`)."""
        batch_size, num_queries, _ = pred_logits.shape
        device = pred_logits.device
        target_classes = torch.full((batch_size, num_queries), self.num_classes, dtype=torch.int64, device=device)
        for b, ((query_idx, target_idx), target) in enumerate(zip(matches, targets)):
            target_classes[b, query_idx.to(device)] = target["labels"].to(device)[target_idx.to(device)]
        # cross_entropy wants classes in dim 1: [B, K+1, Q]
        ce = F.cross_entropy(pred_logits.float().transpose(1, 2), target_classes, self.class_weight, reduction="sum")
        return ce / weight_total

    def _mask_losses(self, mask_logits: list[Tensor], target_idx: list[Tensor],
                     target_masks: Tensor) -> list[dict[str, Tensor]]:
        """Per layer, {mask term name: [M_l] per-pair losses} of the matched pairs."""
        if self.num_points is None and self.fused:
            # All layers in one call, so that each target is expanded to float once, not once per layer.
            sizes = [len(i) for i in target_idx]
            terms = full_mask_losses(torch.cat(mask_logits), target_masks, torch.cat(target_idx), self.mask_terms)
            split = {name: per_mask.split(sizes) for name, per_mask in terms.items()}
            return [{name: split[name][i] for name in terms} for i in range(len(sizes))]
        if self.num_points is None:  # one layer at a time: the plain formulas keep full-size tensors for backward
            return [full_mask_losses(logits, target_masks, idx, self.mask_terms, fused=False)
                    for logits, idx in zip(mask_logits, target_idx)]
        per_layer = []
        for logits, idx in zip(mask_logits, target_idx):
            logits = logits.float()
            points = uncertain_point_coords(
                logits, self.num_points, self.oversample_ratio, self.importance_sample_ratio
            )  # [M_l, P, 2], chosen without gradient
            point_logits = point_sample(logits, points)  # [M_l, P]
            with torch.no_grad():
                point_labels = point_sample(target_masks[idx], points)  # [M_l, P]
            per_layer.append({name: MASK_TERMS[function](point_logits, point_labels)
                              for name, function in self.mask_terms.items()})
        return per_layer


def mean_over_processes(values: Sequence[float], device: torch.device | None = None) -> list[float]:
    """``values`` summed over all processes and divided by the world size; unchanged on one process.

    One all_reduce for all of them, in float64 (counts of pixels stay exact). ``device``: where the
    reduction runs; None picks the current GPU under nccl and the CPU otherwise.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return [float(v) for v in values]
    if device is None:
        nccl = dist.get_backend() == "nccl"
        device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
    counts = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(counts)
    return (counts / dist.get_world_size()).tolist()


def _pad_and_stack(masks: Sequence[Tensor], device: torch.device) -> Tensor:
    """[N_b, H_b, W_b] masks of each image -> [sum N_b, H, W] bool, zero-padded to the largest size."""
    height = max(m.shape[-2] for m in masks)
    width = max(m.shape[-1] for m in masks)
    stacked = torch.zeros(sum(len(m) for m in masks), height, width, dtype=torch.bool, device=device)
    start = 0
    for m in masks:
        stacked[start : start + len(m), : m.shape[-2], : m.shape[-1]] = m.bool()
        start += len(m)
    return stacked  # [N, H, W]
