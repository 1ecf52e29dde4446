"""Pairwise matching costs: the loss of every prediction against every target, with matrix
products instead of Q x T loops (the Hungarian matcher's mask, dice and box projection costs).

The element-wise losses they mirror are in :mod:`babelseg.losses.mask` and
:mod:`babelseg.losses.box_projection` (which import the box and mask profiles from here). Every
function accepts leading batch dimensions: ``float[..., Q, P]`` and ``float[..., T, P]`` ->
``float[..., Q, T]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

EPS = 1e-6
"""Smoothing of the box projection dice (V-Net / BoxInst)."""


@dataclass(frozen=True)
class CostWeights:
    """Weights of the matching cost terms (the mu's of DaTaSeg eq. 5; LMSeg's matching cost uses
    its loss weights).

    Attributes:
        class_weight: Weight of ``-p[target class]``.
        mask_weight: Weight of the sigmoid CE (or focal) mask cost.
        dice_weight: Weight of the dice cost.
        projection_weight: Weight of the box projection cost (box-only targets).
    """

    class_weight: float
    mask_weight: float
    dice_weight: float
    projection_weight: float

    def __post_init__(self) -> None:
        for name in ("class_weight", "mask_weight", "dice_weight", "projection_weight"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"Matching cost {name} must be >= 0, got {value}.")


def pairwise_sigmoid_ce(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """:func:`~babelseg.losses.mask.sigmoid_ce_loss` of every prediction against every target.

    Args:
        inputs: ``float[Q, P]`` logits.
        targets: ``float[T, P]`` in ``[0, 1]``.
    Returns:
        ``float[Q, T]`` mean over the P points.
    """
    # CE(x, t) = t * softplus(-x) + (1 - t) * softplus(x) = softplus(x) - t * x: one softplus
    # pass and one matrix product.
    neg = F.softplus(inputs)
    loss = neg.sum(-1, keepdim=True) - inputs @ targets.transpose(-1, -2)
    return loss / inputs.shape[-1]


def pairwise_sigmoid_focal(
    inputs: torch.Tensor, targets: torch.Tensor, *, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """:func:`~babelseg.losses.mask.sigmoid_focal_loss` of every prediction against every target
    (binary targets).

    Args:
        inputs: ``float[Q, P]`` logits.
        targets: ``float[T, P]`` in ``{0, 1}``.
        alpha: Weight of the positives (``< 0``: none).
        gamma: Focusing exponent.
    Returns:
        ``float[Q, T]`` mean over the P points.
    """
    prob = inputs.sigmoid()
    pos = F.binary_cross_entropy_with_logits(inputs, torch.ones_like(inputs), reduction="none")
    neg = F.binary_cross_entropy_with_logits(inputs, torch.zeros_like(inputs), reduction="none")
    pos = (1 - prob) ** gamma * pos
    neg = prob**gamma * neg
    if alpha >= 0:
        pos, neg = alpha * pos, (1 - alpha) * neg
    loss = pos @ targets.transpose(-1, -2) + neg @ (1 - targets).transpose(-1, -2)
    return loss / inputs.shape[-1]


def pairwise_dice(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """:func:`~babelseg.losses.mask.dice_loss` of every prediction against every target.

    Args:
        inputs: ``float[Q, P]`` logits.
        targets: ``float[T, P]`` in ``[0, 1]``.
    Returns:
        ``float[Q, T]``.
    """
    prob = inputs.sigmoid()
    numerator = 2 * prob @ targets.transpose(-1, -2)
    denominator = prob.sum(-1)[..., :, None] + targets.sum(-1)[..., None, :]
    return 1 - (numerator + 1) / (denominator + 1)


def box_profiles(boxes: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Profiles of the boxes' filled rectangles.

    Args:
        boxes: ``float[..., N, 4]`` ``(x0, y0, x1, y1)`` on the mask grid.
        height: H of the mask grid.
        width: W of the mask grid.
    Returns:
        ``(float[..., N, W], float[..., N, H])``: 1 on the columns / rows the box covers, 0
        elsewhere.
    """
    boxes = boxes.float()

    def covered(start: torch.Tensor, end: torch.Tensor, size: int) -> torch.Tensor:
        lo = torch.ceil(start - 0.5).clamp(0, size - 1)
        hi = torch.maximum(torch.ceil(end - 0.5), lo + 1).clamp(max=size)
        index = torch.arange(size, device=boxes.device, dtype=boxes.dtype)
        return ((index >= lo[..., None]) & (index < hi[..., None])).to(boxes.dtype)

    return covered(boxes[..., 0], boxes[..., 2], width), covered(
        boxes[..., 1], boxes[..., 3], height
    )


def mask_profiles(mask_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Max-projections of ``sigmoid(mask_logits)``.

    Args:
        mask_logits: ``float[N, H, W]``.
    Returns:
        ``(float[N, W], float[N, H])``: the maximum over rows and over columns.
    """
    mask_logits = mask_logits.float()
    return mask_logits.amax(dim=-2).sigmoid(), mask_logits.amax(dim=-1).sigmoid()


def pairwise_box_projection_cost(mask_logits: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """:func:`~babelseg.losses.box_projection.box_projection_loss` of every mask against every box
    (a matching cost).

    Args:
        mask_logits: ``float[..., Q, H, W]``.
        boxes: ``float[..., T, 4]`` on the same grid.
    Returns:
        ``float[..., Q, T]``.
    """
    height, width = mask_logits.shape[-2:]
    px, py = mask_profiles(mask_logits)
    bx, by = box_profiles(boxes, height, width)

    def dice(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        denominator = (pred * pred).sum(-1)[..., :, None] + target.sum(-1)[..., None, :] + EPS
        return 1 - 2 * (pred @ target.transpose(-1, -2)) / denominator

    return dice(px, bx) + dice(py, by)
