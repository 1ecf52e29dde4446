"""Pixel-text alignment: cosine logits with a learnable temperature and the L_HD loss.

SentenceLabels.txt eq. 1-3: ``z_ij = cos(e_j, V_i)``, ``l_i = softmax_j(z_ij / tau)``,
``L_HD = -1/M sum_i y_i log l_i`` over the M valid pixels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from babelseg.labels.space import IGNORE_INDEX


class LearnableTemperature(nn.Module):
    """``1 / tau`` kept as ``exp(log_scale)``, clamped to at most 100 as in CLIP.

    Args:
        temperature: Initial tau (> 0).
        learnable: Whether tau is a trained parameter.
    """

    def __init__(self, *, temperature: float = 0.07, learnable: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        value = torch.tensor(math.log(1.0 / temperature))
        if learnable:
            self.log_scale = nn.Parameter(value)
        else:
            self.register_buffer("log_scale", value)

    def forward(self) -> torch.Tensor:
        """The scale ``1 / tau`` as a 0-d tensor."""
        return self.log_scale.clamp(max=math.log(100.0)).exp()


def cosine_logits(
    pixel_embeddings: torch.Tensor,
    text_embeddings: torch.Tensor,
    scale: torch.Tensor | float,
    *,
    pixel_major: bool = False,
) -> torch.Tensor:
    """Scaled cosine similarity of every pixel with every text.

    Args:
        pixel_embeddings: ``float[B, D, H, W]``.
        text_embeddings: ``float[K, D]`` (normalised or not).
        scale: ``1 / tau``.
        pixel_major: Return ``float[B, H, W, K]`` (contiguous over classes, for per-pixel
            top-k over large vocabularies).
    Returns:
        ``float[B, K, H, W]`` logits (or ``[B, H, W, K]``).
    """
    pix = F.normalize(pixel_embeddings, dim=1)
    txt = F.normalize(text_embeddings.to(pix.dtype), dim=1)
    if pixel_major:
        return torch.einsum("bdhw,kd->bhwk", pix, txt) * scale
    return torch.einsum("bdhw,kd->bkhw", pix, txt) * scale


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
