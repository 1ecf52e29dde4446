import math

import torch
import torch.nn.functional as F

from babelseg.inference.predictor import labels_at_full_resolution
from babelseg.losses.pixel_text import pixel_cross_entropy_sum
from babelseg.models.heads.text_classifier import LearnableTemperature, cosine_logits


def test_cosine_logits_known_values():
    # two pixels: one along x, one at 45 degrees; texts: x axis and y axis
    pix = torch.tensor([[1.0, 1.0], [0.0, 1.0]]).reshape(1, 2, 1, 2)  # D=2, H=1, W=2
    txt = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    logits = cosine_logits(pix, txt, 10.0)
    s = 10.0 / math.sqrt(2.0)
    expected = torch.tensor([[[[10.0, s]], [[0.0, s]]]])
    assert torch.allclose(logits, expected, atol=1e-5)


def test_cross_entropy_sum_matches_hand_computation_and_ignores_255():
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])  # B=1, K=2, H=1, W=2
    target = torch.tensor([[[0, 255]]])
    loss_sum, count = pixel_cross_entropy_sum(logits, target)
    assert int(count) == 1
    assert math.isclose(float(loss_sum), -math.log(math.exp(2) / (math.exp(2) + 1)), rel_tol=1e-6)


def test_cross_entropy_upsamples_low_resolution_logits():
    logits = torch.zeros(1, 3, 2, 2)
    logits[:, 1] = 5.0
    target = torch.ones(1, 8, 8, dtype=torch.long)
    loss_sum, count = pixel_cross_entropy_sum(logits, target)
    assert int(count) == 64
    per_pixel = -math.log(math.exp(5) / (math.exp(5) + 2))
    assert math.isclose(float(loss_sum) / 64, per_pixel, rel_tol=1e-5)


def test_temperature_is_learnable_and_clamped():
    t = LearnableTemperature(temperature=0.07)
    assert math.isclose(float(t()), 1 / 0.07, rel_tol=1e-5)
    assert t.log_scale.requires_grad
    with torch.no_grad():
        t.log_scale.fill_(10.0)
    assert math.isclose(float(t()), 100.0, rel_tol=1e-5)
    fixed = LearnableTemperature(temperature=0.5, learnable=False)
    assert not any(p.requires_grad for p in fixed.parameters())


def test_large_vocabulary_argmax_equals_full_upsampling():
    torch.manual_seed(0)
    for k, (h, w), size in [(2000, (6, 5), (23, 19)), (70, (3, 7), (9, 40)), (500, (1, 1), (5, 5))]:
        logits = torch.randn(k, h, w) * 3
        full = F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)[0]
        assert torch.equal(
            labels_at_full_resolution(logits.permute(1, 2, 0), size, exact=True), full.argmax(0)
        )
        small = labels_at_full_resolution(logits.permute(1, 2, 0), size, full_below=10_000)
        assert torch.equal(small, full.argmax(0))


def test_fast_path_agrees_where_one_class_is_clearly_best():
    torch.manual_seed(1)
    logits = torch.randn(5000, 8, 8)
    logits[17, :4] += 20.0
    logits[4242, 4:] += 20.0
    labels = labels_at_full_resolution(logits.permute(1, 2, 0), (32, 32))
    full = F.interpolate(logits[None], size=(32, 32), mode="bilinear", align_corners=False)[0]
    assert torch.equal(labels, full.argmax(0))
    assert set(labels.unique().tolist()) == {17, 4242}
