"""Binary mask losses on sampled points (MaskFormer / Mask2Former); their pairwise versions (the
Hungarian matching costs) are in :mod:`babelseg.matching.costs`.

Every function takes mask *logits* ``float[N, P]`` (one row per mask, P sampled points) and
targets ``float[N, P]`` in ``[0, 1]``. A mask's loss is its mean over the points (dice: over the
mask); the losses return the *sum* over masks, so the caller divides by the (all-reduced) number
of masks. The pairwise versions return ``float[Q, T]``: the loss of every prediction against every
target, computed with matrix products instead of Q x T loops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sigmoid_ce_loss(
    inputs: torch.Tensor, targets: torch.Tensor, *, reduction: str = "sum"
) -> torch.Tensor:
    """Binary cross-entropy with logits, mean over points, summed over masks.

    Args:
        inputs: ``float[N, P]`` logits.
        targets: ``float[N, P]`` in ``[0, 1]``.
        reduction: ``"sum"`` over masks or ``"none"``.
    Returns:
        0-d sum over the N masks (``"none"``: ``float[N]``).
    """
    loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    return _reduce(loss.mean(1), reduction)


def sigmoid_focal_loss(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "sum",
) -> torch.Tensor:
    """Focal loss (Lin et al. 2017) with logits, mean over points, summed over masks.

    ``alpha_t * (1 - p_t) ** gamma * CE`` with ``p_t = p`` on positives and ``1 - p`` on negatives,
    ``alpha_t = alpha`` on positives and ``1 - alpha`` on negatives (``alpha < 0``: no weighting).

    Args:
        inputs: ``float[N, P]`` logits.
        targets: ``float[N, P]`` in ``[0, 1]``.
        alpha: Weight of the positives.
        gamma: Focusing exponent.
        reduction: ``"sum"`` over masks or ``"none"``.
    Returns:
        0-d sum over the N masks (``"none"``: ``float[N]``).
    """
    prob = inputs.sigmoid()
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return _reduce(loss.mean(1), reduction)


def dice_loss(
    inputs: torch.Tensor, targets: torch.Tensor, *, reduction: str = "sum"
) -> torch.Tensor:
    """Dice loss ``1 - (2 |p t| + 1) / (|p| + |t| + 1)`` of ``p = sigmoid(inputs)``, summed over
    masks (the +1 smoothing of MaskFormer / Mask2Former).

    Args:
        inputs: ``float[N, P]`` logits.
        targets: ``float[N, P]`` in ``[0, 1]``.
        reduction: ``"sum"`` over masks or ``"none"``.
    Returns:
        0-d sum over the N masks (``"none"``: ``float[N]``).
    """
    prob = inputs.sigmoid()
    numerator = 2 * (prob * targets).sum(-1)
    denominator = prob.sum(-1) + targets.sum(-1)
    return _reduce(1 - (numerator + 1) / (denominator + 1), reduction)


def _reduce(per_mask: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "sum":
        return per_mask.sum()
    if reduction == "none":
        return per_mask
    raise ValueError(f"Unknown reduction {reduction!r}; valid: sum, none")
