from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from babelseg.losses.noisy_truncation import (
    truncated_pixel_cross_entropy_sum,
    truncation_weights,
)
from babelseg.losses.pixel_text import pixel_cross_entropy_sum


def _softplus(a: float) -> float:
    # cross-entropy of logits [0, a] against class 0
    return math.log1p(math.exp(a))


def _logits_from(a: list[list[float]]) -> torch.Tensor:
    """``float[B, 2, 1, N]``: class-0 logit 0, class-1 logit ``a``; CE(target 0) = softplus(a)."""
    a_t = torch.tensor(a, dtype=torch.float32)  # [B, N]
    return torch.stack([torch.zeros_like(a_t), a_t], dim=1)[:, :, None, :]


def test_drops_the_three_largest_of_ten_with_exact_sum():
    a = [-5.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0]
    target = torch.zeros(1, 1, 10, dtype=torch.long)
    res = truncated_pixel_cross_entropy_sum(_logits_from([a]), target, drop_fraction=0.3)
    expected = sum(_softplus(x) for x in a[:7])
    assert math.isclose(float(res.loss_sum), expected, rel_tol=1e-6)
    assert int(res.num_kept) == 7 and int(res.num_valid) == 10
    assert math.isclose(res.dropped_fraction, 0.3)
    # pixel order does not matter
    perm = [7, 2, 9, 0, 5, 8, 1, 3, 6, 4]
    shuffled = truncated_pixel_cross_entropy_sum(
        _logits_from([[a[i] for i in perm]]), target, drop_fraction=0.3
    )
    assert math.isclose(float(shuffled.loss_sum), expected, rel_tol=1e-6)


def test_thresholds_are_per_image():
    low = [-6.0, -5.0, -4.0, -3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5]
    high = [x + 10.0 for x in low]  # every loss above every loss of the first image
    target = torch.zeros(2, 1, 10, dtype=torch.long)
    res = truncated_pixel_cross_entropy_sum(_logits_from([low, high]), target, drop_fraction=0.3)
    # a global threshold would drop 6 pixels of the second image; per image, 3 of each
    expected = sum(_softplus(x) for x in low[:7]) + sum(_softplus(x) for x in high[:7])
    assert int(res.num_kept) == 14
    assert math.isclose(float(res.loss_sum), expected, rel_tol=1e-6)


def test_ignored_pixels_are_never_counted_nor_move_the_threshold():
    a = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 50.0, 60.0, 70.0, 80.0, 90.0]
    target = torch.tensor([[[0] * 10 + [255] * 5]])
    res = truncated_pixel_cross_entropy_sum(_logits_from([a]), target, drop_fraction=0.3)
    # 10 valid pixels -> floor(3.0) = 3 dropped (not floor(0.3 * 15) = 4)
    assert int(res.num_valid) == 10 and int(res.num_kept) == 7
    assert math.isclose(float(res.loss_sum), sum(_softplus(x) for x in a[:7]), rel_tol=1e-6)


def test_zero_drop_equals_plain_cross_entropy_with_upsampling():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 3, 5, generator=g) * 3
    target = torch.randint(0, 4, (2, 9, 15), generator=g)
    target[0, :2] = 255
    res = truncated_pixel_cross_entropy_sum(logits, target, drop_fraction=0.0)
    plain_sum, plain_count = pixel_cross_entropy_sum(logits, target)
    assert torch.allclose(res.loss_sum, plain_sum, rtol=1e-6)
    assert int(res.num_kept) == int(plain_count) == int(res.num_valid) == 2 * 9 * 15 - 30
    assert res.dropped_fraction == 0.0


def test_ties_at_the_threshold_are_kept():
    # sorted losses: the 7th and 8th smallest are equal -> only the 2 strictly larger are dropped
    a = [-5.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 1.0, 2.0, 3.0]
    target = torch.zeros(1, 1, 10, dtype=torch.long)
    res = truncated_pixel_cross_entropy_sum(_logits_from([a]), target, drop_fraction=0.3)
    assert int(res.num_kept) == 8
    assert math.isclose(float(res.loss_sum), sum(_softplus(x) for x in a[:8]), rel_tol=1e-6)
    equal = truncated_pixel_cross_entropy_sum(_logits_from([[2.0] * 10]), target, drop_fraction=0.3)
    assert int(equal.num_kept) == 10


@pytest.mark.parametrize(
    ("n_valid", "fraction", "dropped"), [(3, 0.3, 0), (4, 0.3, 1), (0, 0.3, 0), (100, 0.29, 29)]
)
def test_number_dropped_is_floor_of_fraction_times_valid(n_valid, fraction, dropped):
    losses = torch.arange(100, dtype=torch.float32)[None]
    valid = torch.zeros(1, 100, dtype=torch.bool)
    valid[0, :n_valid] = True
    keep = truncation_weights(losses, valid, drop_fraction=fraction)
    assert int(keep.sum()) == n_valid - dropped
    assert not keep[~valid].any()
    if dropped:
        assert not keep[0, n_valid - dropped : n_valid].any()


def test_gradients_flow_only_through_kept_pixels():
    a = [-5.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 7.0]
    logits = _logits_from([a]).requires_grad_(True)
    target = torch.tensor([[[0] * 10 + [255]]])
    truncated_pixel_cross_entropy_sum(logits, target, drop_fraction=0.3).loss_sum.backward()
    grad = logits.grad[0, 1, 0]  # d loss / d a_i = sigmoid(a_i) for kept pixels
    expected = torch.tensor([torch.sigmoid(torch.tensor(x)).item() for x in a[:7]] + [0.0] * 4)
    assert torch.allclose(grad, expected, atol=1e-6)


def test_mixed_precision_logits_upsampled_to_target():
    logits = torch.zeros(1, 2, 2, 2)
    logits[:, 0] = 3.0
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    res = truncated_pixel_cross_entropy_sum(logits.half(), target, drop_fraction=0.5)
    # all 64 losses are equal: ties keep every pixel
    assert int(res.num_kept) == 64
    assert math.isclose(
        float(res.loss_sum), 64 * float(F.softplus(torch.tensor(-3.0))), rel_tol=1e-3
    )


@pytest.mark.parametrize("bad", [1.0, -0.1, float("nan"), "much"])
def test_invalid_drop_fraction_is_a_clear_error(bad):
    logits = torch.zeros(1, 2, 1, 1)
    target = torch.zeros(1, 1, 1, dtype=torch.long)
    with pytest.raises(ValueError, match="drop_fraction"):
        truncated_pixel_cross_entropy_sum(logits, target, drop_fraction=bad)
