"""Box projection loss (DaTaSeg eq. 3, from BoxInst): weak mask supervision from boxes.

A mask fits its box when its maximum over rows (a profile along x, length W) and its maximum over
columns (a profile along y, length H) match those of the box's filled rectangle. The loss is the
sum of the two profiles' dice losses, with the dice of V-Net / BoxInst
``1 - 2 sum(p t) / (sum(p^2) + sum(t^2) + eps)`` on ``p = sigmoid(mask)`` (the max of the sigmoid
is the sigmoid of the max, so the projection is taken on logits).

Boxes are ``(x0, y0, x1, y1)`` in the pixel coordinates of the mask grid, edges not centres (a
box ``(0, 0, 2, 1)`` covers pixels ``(0, 0)`` and ``(0, 1)``): a row or column belongs to the box
when its centre lies in ``[x0, x1)``; a box thinner than one pixel still covers the one nearest
its start, so every box has a non-empty profile.
"""

from __future__ import annotations

import torch

EPS = 1e-6


def box_profiles(boxes: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Profiles of the boxes' filled rectangles.

    Args:
        boxes: ``float[N, 4]`` ``(x0, y0, x1, y1)`` on the mask grid.
        height: H of the mask grid.
        width: W of the mask grid.
    Returns:
        ``(float[N, W], float[N, H])``: 1 on the columns / rows the box covers, 0 elsewhere.
    """
    boxes = boxes.float()

    def covered(start: torch.Tensor, end: torch.Tensor, size: int) -> torch.Tensor:
        lo = torch.ceil(start - 0.5).clamp(0, size - 1)
        hi = torch.maximum(torch.ceil(end - 0.5), lo + 1).clamp(max=size)
        index = torch.arange(size, device=boxes.device, dtype=boxes.dtype)
        return ((index >= lo[:, None]) & (index < hi[:, None])).to(boxes.dtype)

    return covered(boxes[:, 0], boxes[:, 2], width), covered(boxes[:, 1], boxes[:, 3], height)


def mask_profiles(mask_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Max-projections of ``sigmoid(mask_logits)``.

    Args:
        mask_logits: ``float[N, H, W]``.
    Returns:
        ``(float[N, W], float[N, H])``: the maximum over rows and over columns.
    """
    mask_logits = mask_logits.float()
    return mask_logits.amax(dim=-2).sigmoid(), mask_logits.amax(dim=-1).sigmoid()


def _dice(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``float[N, L]`` x2 -> ``float[N]``."""
    inter = (pred * target).sum(-1)
    return 1 - 2 * inter / ((pred * pred).sum(-1) + (target * target).sum(-1) + EPS)


def box_projection_loss(mask_logits: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Projection loss of each mask against its box.

    Args:
        mask_logits: ``float[N, H, W]`` mask logits.
        boxes: ``float[N, 4]`` ``(x0, y0, x1, y1)`` on the same grid.
    Returns:
        ``float[N]`` loss per mask, in ``[0, 2]``.
    """
    height, width = mask_logits.shape[-2:]
    px, py = mask_profiles(mask_logits)
    bx, by = box_profiles(boxes, height, width)
    return _dice(px, bx) + _dice(py, by)


def pairwise_box_projection_cost(mask_logits: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """:func:`box_projection_loss` of every mask against every box (a matching cost).

    Args:
        mask_logits: ``float[Q, H, W]``.
        boxes: ``float[T, 4]`` on the same grid.
    Returns:
        ``float[Q, T]``.
    """
    height, width = mask_logits.shape[-2:]
    px, py = mask_profiles(mask_logits)
    bx, by = box_profiles(boxes, height, width)

    def dice(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        denominator = (pred * pred).sum(-1)[:, None] + target.sum(-1)[None, :] + EPS
        return 1 - 2 * (pred @ target.T) / denominator

    return dice(px, bx) + dice(py, by)
