"""The L_HD loss: per-pixel cross-entropy of text-classifier logits.

SentenceLabels.txt eq. 1-3: ``z_ij = cos(e_j, V_i)``, ``l_i = softmax_j(z_ij / tau)``,
``L_HD = -1/M sum_i y_i log l_i`` over the M valid pixels (the logits come from
:mod:`babelseg.models.heads.text_classifier`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from babelseg.labels.space import IGNORE_INDEX


def pixel_cross_entropy_sum(
    logits: torch.Tensor, target: torch.Tensor, *, ignore_index: int = IGNORE_INDEX
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed per-pixel cross-entropy (logits upsampled bilinearly to the target size).

    Args:
        logits: ``float[B, K, h, w]``.
        target: ``int64[B, H, W]`` class indices, ``ignore_index`` where unlabelled.
    Returns:
        ``(loss_sum, num_valid)``: 0-d tensors; the caller divides (so several datasets or
        processes can share one normaliser).
    """
    if logits.shape[-2:] != target.shape[-2:]:
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    per_pixel = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="none")
    valid = target != ignore_index
    return per_pixel[valid].sum(), valid.sum()
