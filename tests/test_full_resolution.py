"""Full-resolution labels from stride-4 scores, band by band, equal to upsampling all at once."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from babelseg.inference.full_resolution import full_resolution, probabilities
from babelseg.inference.predictor import labels_at_full_resolution


def _brute(scores: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    up = F.interpolate(scores[None], scale_factor=4, mode="bilinear", align_corners=False)[0]
    return up[:, : size[0], : size[1]]


@pytest.mark.parametrize("size", [(37, 53), (40, 64), (5, 3)])
def test_bands_equal_one_full_upsampling(size):
    torch.manual_seed(0)
    grid = (-(-size[0] // 4), -(-size[1] // 4))
    scores = torch.randn(5, *grid) * 3
    expected = _brute(scores, size).argmax(0).numpy()
    for band_bytes in (1, 10_000, 1 << 30):  # one cell row per band, a few, one band
        got = full_resolution(scores, size, band_bytes=band_bytes)
        np.testing.assert_array_equal(got.labels, expected)
        assert got.area.sum() == size[0] * size[1]
        np.testing.assert_array_equal(got.area, np.bincount(expected.ravel(), minlength=5))


def test_mean_probability_is_that_of_each_pixels_cell():
    torch.manual_seed(1)
    size = (30, 22)
    scores = torch.randn(4, 8, 6) * 2
    got = full_resolution(scores, size, band_bytes=1)
    probs = scores.softmax(0).numpy()
    rows, cols = np.arange(size[0]) // 4, np.arange(size[1]) // 4
    per_pixel = probs[got.labels, rows[:, None], cols[None, :]]
    for k in range(4):
        mask = got.labels == k
        want = per_pixel[mask].mean() if mask.any() else 0.0
        assert got.mean_probability[k] == pytest.approx(want, abs=1e-6)


def test_large_vocabularies_take_the_candidate_search_per_band():
    """Bands give what the candidate search gives on the whole grid (which is exact wherever
    its bound certifies the winner)."""
    torch.manual_seed(2)
    size = (45, 38)
    scores = torch.randn(300, 12, 10) * 4
    whole = labels_at_full_resolution(scores.permute(1, 2, 0), (48, 40))[:45, :38].numpy()
    got = full_resolution(scores, size, band_bytes=1)
    np.testing.assert_array_equal(got.labels, whole)
    # a few clear winners among 300 (as trained models give): certified, so exact
    clear = torch.randn(300, 12, 10) * 0.1
    clear[7, :6] += 5.0
    clear[123, 6:] += 5.0
    clear[250, :, 7:] += 8.0
    got = full_resolution(clear, size, band_bytes=1)
    np.testing.assert_array_equal(got.labels, _brute(clear, size).argmax(0).numpy())


def test_probabilities_and_errors():
    mass = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    np.testing.assert_allclose(probabilities(mass, "sum")[:, 0].numpy(), [0.25, 0.75])
    np.testing.assert_allclose(probabilities(mass, "softmax").sum(0).numpy(), [1.0, 1.0])
    with pytest.raises(ValueError, match="normalisation"):
        probabilities(mass, "max")
    with pytest.raises(ValueError, match="do not belong"):
        full_resolution(torch.zeros(2, 3, 3), (40, 40))
