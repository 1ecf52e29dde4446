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

from babelseg.matching.costs import EPS, box_profiles, mask_profiles


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
