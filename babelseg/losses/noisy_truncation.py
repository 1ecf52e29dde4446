"""L_LD: pixel cross-entropy with per-image adaptive loss truncation, for noisy masks.

SentenceLabels.txt eq. 4-5: ``w_i = 0`` where ``|log l_i| > mu`` and 1 otherwise,
``L_LD = -1/M sum_i w_i y_i log l_i`` over the M valid pixels, with ``mu`` chosen per image so
that the pixels with the highest ``drop_fraction`` (30 % in the paper) of that image's losses are
ignored: on coarse masks those are mostly the mislabelled pixels.

Rules (they make the loss deterministic and independent of pixel order):

- Per image with ``n`` valid pixels, ``k = floor(drop_fraction * n)`` is the number to drop;
  ``mu`` is the ``(k+1)``-th largest valid loss (the largest loss that is kept) and every pixel
  with loss ``> mu`` is dropped, exactly eq. 4.
- Ties: pixels whose loss equals ``mu`` are all kept, so with ties at the threshold fewer than
  ``k`` pixels may be dropped (an image whose losses are all equal drops none).
- Few valid pixels: when ``k == 0`` (``n < 1 / drop_fraction``, e.g. ``n <= 3`` at 0.3) nothing
  is dropped; images without valid pixels contribute nothing.
- ``mu`` is chosen without gradient; gradients flow through the kept pixels only.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from babelseg.labels.space import IGNORE_INDEX

# floor(p * n) with a tolerance, so 0.29 * 100 (= 28.999999999999996 in floats) drops 29
_FLOOR_EPS = 1e-6


class TruncatedLoss(NamedTuple):
    """The result of :func:`truncated_pixel_cross_entropy_sum`.

    Attributes:
        loss_sum: 0-d float, the summed cross-entropy of the kept pixels (differentiable).
        num_kept: 0-d int64, pixels with ``w_i = 1``.
        num_valid: 0-d int64, labelled pixels before truncation (eq. 5's ``M``).
    """

    loss_sum: torch.Tensor
    num_kept: torch.Tensor
    num_valid: torch.Tensor

    @property
    def dropped_fraction(self) -> float:
        """Share of the valid pixels that were dropped (0.0 when there were none), for logging."""
        valid = int(self.num_valid)
        return 0.0 if valid == 0 else 1.0 - int(self.num_kept) / valid


def check_drop_fraction(drop_fraction: float) -> float:
    """Validate the truncation fraction.

    Args:
        drop_fraction: Share of each image's highest losses to ignore.
    Returns:
        ``drop_fraction`` as a float.
    Raises:
        ValueError: it is not a number in ``[0, 1)``.
    """
    try:
        value = float(drop_fraction)
    except (TypeError, ValueError):
        raise ValueError(
            f"drop_fraction must be a number in [0, 1), got {drop_fraction!r}."
        ) from None
    if not 0.0 <= value < 1.0:  # also rejects NaN
        raise ValueError(
            f"drop_fraction must be in [0, 1) (the share of each image's highest pixel losses to "
            f"ignore; the paper uses 0.3), got {drop_fraction!r}."
        )
    return value


def truncation_weights(
    losses: torch.Tensor, valid: torch.Tensor, *, drop_fraction: float
) -> torch.Tensor:
    """Eq. 4: which pixels to keep, with an adaptive threshold per image.

    Args:
        losses: ``float[B, N]`` per-pixel losses (any values where ``valid`` is False).
        valid: ``bool[B, N]`` labelled pixels.
        drop_fraction: Share of each image's valid pixels with the highest losses to drop.
    Returns:
        ``bool[B, N]``: True for valid pixels whose loss is ``<= mu`` of their image (``w_i = 1``);
        see the module docstring for ties and images with few valid pixels.
    """
    drop_fraction = check_drop_fraction(drop_fraction)
    if losses.shape != valid.shape or losses.dim() != 2:
        raise ValueError(
            f"losses and valid must both be [B, N]; got {tuple(losses.shape)} and "
            f"{tuple(valid.shape)}."
        )
    keep = valid.clone()
    if drop_fraction == 0.0:
        return keep
    with torch.no_grad():
        for b in range(losses.shape[0]):
            values = losses[b][valid[b]]
            n = values.numel()
            k = math.floor(drop_fraction * n + _FLOOR_EPS)
            if k == 0:
                continue
            # the (n - k)-th smallest = the (k + 1)-th largest = the largest loss kept
            mu = torch.kthvalue(values, n - k).values
            keep[b] &= losses[b] <= mu
    return keep


def truncated_pixel_cross_entropy_sum(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    drop_fraction: float = 0.3,
    ignore_index: int = IGNORE_INDEX,
) -> TruncatedLoss:
    """Summed per-pixel cross-entropy over the pixels eq. 4 keeps (the numerator of eq. 5).

    Logits are upsampled bilinearly to the target size first, as in ``pixel_cross_entropy_sum``.
    ``drop_fraction = 0`` gives exactly ``pixel_cross_entropy_sum``.

    Args:
        logits: ``float[B, K, h, w]`` class logits.
        target: ``int64[B, H, W]`` class indices, ``ignore_index`` where unlabelled.
        drop_fraction: Share of each image's valid pixels with the highest losses to ignore,
            in ``[0, 1)``; the paper uses 0.3.
        ignore_index: Target value of unlabelled pixels (never counted, never a threshold input).
    Returns:
        ``TruncatedLoss(loss_sum, num_kept, num_valid)`` of 0-d tensors. Eq. 5 divides by
        ``M = num_valid`` (the kept pixels only change the numerator); the caller divides, so
        several datasets or processes can share one normaliser.
    Raises:
        ValueError: ``drop_fraction`` is outside ``[0, 1)`` or the shapes do not match.
    """
    drop_fraction = check_drop_fraction(drop_fraction)
    if logits.dim() != 4 or target.dim() != 3 or logits.shape[0] != target.shape[0]:
        raise ValueError(
            f"Expected logits [B, K, h, w] and target [B, H, W] with the same B; got "
            f"{tuple(logits.shape)} and {tuple(target.shape)}."
        )
    if logits.shape[-2:] != target.shape[-2:]:
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    per_pixel = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="none")
    batch = target.shape[0]
    losses = per_pixel.reshape(batch, -1)
    valid = (target != ignore_index).reshape(batch, -1)
    keep = truncation_weights(losses.detach(), valid, drop_fraction=drop_fraction)
    return TruncatedLoss(loss_sum=losses[keep].sum(), num_kept=keep.sum(), num_valid=valid.sum())
