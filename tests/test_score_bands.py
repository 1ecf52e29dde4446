"""Full-resolution labels computed in bands of rows: the same labels as all at once, with the
class scores held in memory never beyond the budget (10,000 labels on a large image)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from babelseg.inference.output_rows import output_rows, output_size
from babelseg.inference.score_bands import labels_at_full_resolution, labels_in_bands
from babelseg.models.outputs import MaskOutput, PixelOutput


def _clear_pixels(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``bool[H, W]``: output pixels whose best upsampled score leads the second by > 1e-4 (in
    float64), where any summation order gives the same arg-max on any machine."""
    maps = logits.double().permute(2, 0, 1)[None]
    up = torch.nn.functional.interpolate(maps, size=size, mode="bilinear", align_corners=False)
    top = up[0].topk(2, dim=0).values
    return (top[0] - top[1]) > 1e-4


@pytest.mark.parametrize("k", [5, 300])
def test_bands_give_the_labels_of_one_pass_within_the_budget(k):
    h, w, size = 30, 20, (117, 83)
    logits = torch.rand((h, w, k), generator=torch.Generator().manual_seed(k))
    calls = []

    def scores_of_rows(r0: int, r1: int) -> torch.Tensor:
        calls.append((r0, r1))
        return logits[r0:r1]

    budget = 64 * 1024
    banded = labels_in_bands(scores_of_rows, (h, w), size, k, budget_bytes=budget)
    whole = labels_at_full_resolution(logits, size)
    clear = _clear_pixels(logits, size)
    assert clear.float().mean() > 0.95
    assert torch.equal(banded[clear], whole[clear])
    assert len(calls) > 1  # it did split
    assert max((r1 - r0) * w * k * 4 for r0, r1 in calls) <= budget
    assert calls[0][0] == 0 and calls[-1][1] == h


def test_ten_thousand_labels_on_a_large_image_stay_within_the_budget():
    """The scores of all rows would take 4 * 150 * 100 * 10,000 bytes = 600 MB."""
    h, w, k, size = 150, 100, 10_000, (600, 400)
    columns = torch.arange(w) % k

    def scores_of_rows(r0: int, r1: int) -> torch.Tensor:
        scores = torch.zeros((r1 - r0, w, k))
        rows = torch.arange(r0, r1)[:, None]
        scores[
            torch.arange(r1 - r0)[:, None], torch.arange(w)[None, :], (rows * 7 + columns) % k
        ] = 1
        peak.append(scores.numel() * 4)
        return scores

    peak: list[int] = []
    budget = 32 << 20
    labels = labels_in_bands(scores_of_rows, (h, w), size, k, budget_bytes=budget)
    assert labels.shape == size and max(peak) <= budget
    # at an output pixel centred on a low-resolution pixel the label is that pixel's class
    ys, xs = np.arange(1, 600, 4)[:20], np.arange(1, 400, 4)[:20]
    expected = (np.arange(h)[:20, None] * 7 + np.arange(w)[None, :20]) % k
    np.testing.assert_array_equal(labels[ys][:, xs].numpy(), expected)


def test_output_rows_slices_spatial_tensors_only():
    mask = MaskOutput(
        mask_logits=torch.randn(1, 3, 10, 6),
        class_embeddings=torch.randn(1, 3, 8),
        aux=[
            MaskOutput(mask_logits=torch.randn(1, 3, 10, 6), class_embeddings=torch.randn(1, 3, 8))
        ],
    )
    rows = output_rows(mask, 2, 5)
    assert torch.equal(rows.mask_logits, mask.mask_logits[:, :, 2:5])
    assert rows.class_embeddings is mask.class_embeddings and rows.aux is None
    assert output_size(PixelOutput(embeddings=torch.zeros(2, 4, 7, 9))) == (7, 9)
