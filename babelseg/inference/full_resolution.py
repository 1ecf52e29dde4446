"""From stride-4 class scores to a full-resolution label map, band by band.

The scores are upsampled by exactly 4 (bilinear, pixel centres aligned: cell ``(i, j)`` covers
pixels ``[4i, 4i+4)``, as the models' own upsampling does) and arg-maxed one band of rows at a
time, so memory is bounded by the band, never by ``K x H x W``: an 8000 x 6000 image with 20
classes would need 3.8 GB of upsampled scores at once. Each band reads one extra row of cells
above and below, which makes it exactly equal to upsampling the whole grid. Vocabularies larger
than a few dozen classes use :func:`labels_at_full_resolution`'s candidate search per band.

Per class, the mean probability over the pixels it wins is collected on the way (a pixel's
probability is that of its stride-4 cell), which gives segment scores without a full-resolution
probability map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from babelseg.inference.predictor import labels_at_full_resolution
from babelseg.inference.windows import STRIDE

NORMALISATIONS = ("softmax", "sum")
BAND_BYTES = 64 << 20
"""Roughly how much memory one band's upsampled scores may take."""


def probabilities(scores: torch.Tensor, normalisation: str) -> torch.Tensor:
    """Class probabilities from class scores along dim 0.

    Args:
        scores: ``float[K, ...]``.
        normalisation: ``softmax`` for logits (per-pixel recipes), ``sum`` for scores that are
            already non-negative class masses (mask-classification recipes' ``sum_q p_q(k)
            sigmoid(m_q)``).
    Returns:
        ``float[K, ...]`` summing to 1 over K.
    """
    if normalisation == "softmax":
        return scores.float().softmax(0)
    if normalisation == "sum":
        mass = scores.float().clamp(min=0)
        return mass / mass.sum(0, keepdim=True).clamp(min=1e-12)
    raise ValueError(f"Unknown normalisation '{normalisation}'; valid: {list(NORMALISATIONS)}.")


@dataclass
class FullResolution:
    """A label map and what each class got.

    Attributes:
        labels: ``int64[H, W]`` class indices.
        area: ``int64[K]`` pixels per class.
        mean_probability: ``float64[K]`` mean probability of the class over its pixels (0 where
            it has none).
    """

    labels: np.ndarray
    area: np.ndarray
    mean_probability: np.ndarray


def full_resolution(
    scores: torch.Tensor,
    size: tuple[int, int],
    *,
    normalisation: str = "softmax",
    band_bytes: int = BAND_BYTES,
) -> FullResolution:
    """Arg-max labels at ``size`` from stride-4 scores, in bands of rows.

    Args:
        scores: ``float[K, ceil(H/4), ceil(W/4)]`` (CPU or GPU).
        size: ``(H, W)``.
        normalisation: How scores become probabilities (see :func:`probabilities`).
        band_bytes: Memory for one band's upsampled scores (smaller = more, thinner bands).
    Returns:
        :class:`FullResolution` at ``H x W``.
    """
    k, grid_h, grid_w = scores.shape
    height, width = int(size[0]), int(size[1])
    if (grid_h, grid_w) != (-(-height // STRIDE), -(-width // STRIDE)):
        raise ValueError(
            f"Scores of grid {grid_h}x{grid_w} do not belong to a {height}x{width} image "
            f"(expected {-(-height // STRIDE)}x{-(-width // STRIDE)})."
        )
    pixel_major = scores.float().permute(1, 2, 0)  # [h, w, K] view
    per_cell_row = STRIDE * STRIDE * grid_w * 4 * max(min(k, 64), 40)
    band = max(1, band_bytes // per_cell_row)
    labels = np.empty((height, width), dtype=np.int64)
    area = np.zeros(k, dtype=np.int64)
    prob_sum = np.zeros(k, dtype=np.float64)
    cols = torch.arange(width, device=scores.device) // STRIDE
    for top in range(0, grid_h, band):
        bottom = min(top + band, grid_h)
        lo, hi = max(top - 1, 0), min(bottom + 1, grid_h)
        up = labels_at_full_resolution(pixel_major[lo:hi], (STRIDE * (hi - lo), STRIDE * grid_w))
        first, last = STRIDE * top, min(STRIDE * bottom, height)
        offset = STRIDE * (top - lo)
        band_labels = up[offset : offset + last - first, :width]
        rows = torch.arange(first, last, device=scores.device) // STRIDE - top
        probs = probabilities(scores[:, top:bottom], normalisation)  # this band's cells only
        band_probs = probs[band_labels, rows[:, None], cols[None, :]]
        flat = band_labels.reshape(-1).cpu()
        area += torch.bincount(flat, minlength=k).numpy()
        prob_sum += torch.bincount(
            flat, weights=band_probs.reshape(-1).double().cpu(), minlength=k
        ).numpy()
        labels[first:last] = band_labels.cpu().numpy()
    mean = np.divide(prob_sum, area, out=np.zeros(k), where=area > 0)
    return FullResolution(labels=labels, area=area, mean_probability=mean)
