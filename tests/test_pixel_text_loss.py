import math

import torch
import torch.nn.functional as F

from babelseg.inference.predictor import labels_at_full_resolution
from babelseg.losses.pixel_text import LearnableTemperature, cosine_logits, pixel_cross_entropy_sum


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
    logits = torch.randn(2000, 6, 5) * 3
    fast = labels_at_full_resolution(logits, (23, 19))
    full = F.interpolate(logits[None], size=(23, 19), mode="bilinear", align_corners=False)[0]
    assert torch.equal(fast, full.argmax(0))


def test_candidate_classes_are_few_when_one_class_dominates():
    from babelseg.inference.predictor import candidate_classes

    logits = torch.zeros(10000, 4, 4)
    logits[7] = 5.0
    logits[42, 0, 0] = 9.0  # wins one corner
    assert candidate_classes(logits).tolist() == [7, 42]
