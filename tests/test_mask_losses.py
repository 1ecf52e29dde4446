"""Mask losses, point sampling and the mask criterion on hand-sized inputs with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from babelseg.losses.box_projection import box_projection_loss
from babelseg.losses.mask import dice_loss, sigmoid_ce_loss, sigmoid_focal_loss
from babelseg.losses.mask_criterion import LOSS_KEYS, LayerPrediction, MaskCriterion, target_counts
from babelseg.matching.costs import pairwise_dice, pairwise_sigmoid_ce, pairwise_sigmoid_focal
from babelseg.matching.groups import MatchGroup
from babelseg.matching.hungarian import HungarianMatcher
from babelseg.matching.point_sampling import point_sample, uncertain_points
from babelseg.matching.targets import MaskTargets, stack_targets

BIG = 30.0  # sigmoid(BIG) == 1 and sigmoid(-BIG) == 0 in float32 (to ~1e-13)


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# ---------------------------------------------------------------- dice, CE, focal


def test_dice_identical_masks_is_zero_and_disjoint_is_one() -> None:
    target = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    logits = BIG * (2 * target - 1)
    assert float(dice_loss(logits, target)) == pytest.approx(0.0, abs=1e-6)
    # Disjoint: intersection 0, |p| + |t| = 2 + 2, loss = 1 - (0 + 1) / (4 + 1) = 0.8.
    disjoint = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    assert float(dice_loss(logits, disjoint)) == pytest.approx(0.8, abs=1e-6)
    # Large masks: the +1 smoothing vanishes, disjoint -> 1.
    big_t = torch.zeros(1, 2000)
    big_t[:, :1000] = 1
    assert float(dice_loss(-BIG * (2 * big_t - 1), big_t)) == pytest.approx(1.0, abs=1e-3)


def test_dice_soft_prediction_hand_value() -> None:
    # p = 0.5 on 4 points, t = [1, 1, 0, 0]: 1 - (2 * 1 + 1) / (2 + 2 + 1) = 0.4.
    logits = torch.zeros(1, 4)
    target = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    assert float(dice_loss(logits, target)) == pytest.approx(0.4, abs=1e-6)


def test_sigmoid_ce_known_values() -> None:
    logits = torch.tensor([[0.0, 2.0], [-1.0, 3.0]])
    targets = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    row0 = (math.log(2) + _softplus(2.0)) / 2
    row1 = (_softplus(1.0) + _softplus(-3.0)) / 2
    assert float(sigmoid_ce_loss(logits, targets)) == pytest.approx(row0 + row1, rel=1e-6)
    per = sigmoid_ce_loss(logits, targets, reduction="none")
    torch.testing.assert_close(per, torch.tensor([row0, row1]))


def test_sigmoid_focal_known_values() -> None:
    logits = torch.tensor([[0.0, 2.0]])
    targets = torch.tensor([[1.0, 0.0]])
    # Point 1: p = 0.5, t = 1: 0.25 * (1 - 0.5)^2 * log 2.
    point1 = 0.25 * 0.25 * math.log(2)
    # Point 2: p = sigmoid(2), t = 0: p_t = 1 - p, (1 - p_t)^2 = p^2, alpha_t = 0.75.
    p = 1 / (1 + math.exp(-2))
    point2 = 0.75 * p**2 * _softplus(2.0)
    expected = (point1 + point2) / 2
    assert float(sigmoid_focal_loss(logits, targets)) == pytest.approx(expected, rel=1e-6)
    # gamma = 0 and alpha < 0: plain CE.
    plain = sigmoid_focal_loss(logits, targets, alpha=-1, gamma=0.0)
    assert float(plain) == pytest.approx(float(sigmoid_ce_loss(logits, targets)), rel=1e-6)


def test_pairwise_costs_equal_the_losses_pair_by_pair() -> None:
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(3, 7, generator=g) * 3
    targets = (torch.rand(2, 7, generator=g) > 0.5).float()
    ce, focal, dice = (
        pairwise_sigmoid_ce(inputs, targets),
        pairwise_sigmoid_focal(inputs, targets),
        pairwise_dice(inputs, targets),
    )
    assert ce.shape == focal.shape == dice.shape == (3, 2)
    for q in range(3):
        for t in range(2):
            i, tt = inputs[q : q + 1], targets[t : t + 1]
            assert float(ce[q, t]) == pytest.approx(float(sigmoid_ce_loss(i, tt)), rel=1e-5)
            assert float(focal[q, t]) == pytest.approx(float(sigmoid_focal_loss(i, tt)), rel=1e-5)
            assert float(dice[q, t]) == pytest.approx(float(dice_loss(i, tt)), rel=1e-5)


# ---------------------------------------------------------------- point sampling


def test_point_sample_on_a_ramp() -> None:
    # value = 10 * row + col on a 2 x 4 map; coords are (x, y) relative to the whole map.
    grid = (10 * torch.arange(2.0)[:, None] + torch.arange(4.0)[None, :])[None, None]
    coords = torch.tensor(
        [
            [
                [2.5 / 4, 1.5 / 2],  # centre of pixel (row 1, col 2): 12
                [0.5, 0.5],  # between cols 1, 2 and rows 0, 1: (1 + 2 + 11 + 12) / 4
                [0.5 / 4, 0.5 / 2],  # centre of pixel (0, 0): 0
                [0.0, 0.0],  # the corner: border padding keeps the corner pixel's value
            ]
        ]
    )
    values = point_sample(grid, coords)
    assert values.shape == (1, 1, 4)
    torch.testing.assert_close(values[0, 0], torch.tensor([12.0, 6.5, 0.0, 0.0]))


def test_point_sample_shared_points_over_many_maps() -> None:
    maps = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 2, 4, 4)  # map n is constant n
    coords = torch.rand(1, 5, 2, generator=torch.Generator().manual_seed(1))
    values = point_sample(maps.contiguous(), coords)
    assert values.shape == (3, 2, 5)
    torch.testing.assert_close(values, torch.arange(3.0).view(3, 1, 1).expand(3, 2, 5))


def test_uncertain_points_concentrate_where_logits_are_near_zero() -> None:
    # Left half of the map: logit 0 (most uncertain); right half: -10.
    logits = torch.full((1, 1, 8, 8), -10.0)
    logits[..., :4] = 0.0
    # Points with x < 3.5 / 8 read exactly 0 (interpolating two zero columns).
    threshold = 3.5 / 8
    seed, num_points = 3, 10
    candidates = torch.rand(1, 30, 2, generator=torch.Generator().manual_seed(seed))
    assert int((candidates[0, :, 0] < threshold).sum()) >= num_points  # precondition of the test
    points = uncertain_points(logits, num_points, 3.0, 1.0, torch.Generator().manual_seed(seed))
    assert points.shape == (1, num_points, 2)
    assert bool((points[0, :, 0] < threshold).all())
    # Without importance sampling the points are uniform: the second draw of the generator.
    g = torch.Generator().manual_seed(seed)
    uniform = uncertain_points(logits, num_points, 3.0, 0.0, g)
    g2 = torch.Generator().manual_seed(seed)
    torch.rand(1, 30, 2, generator=g2)
    torch.testing.assert_close(uniform, torch.rand(1, num_points, 2, generator=g2))
    with pytest.raises(ValueError, match="importance_sample_ratio"):
        uncertain_points(logits, 4, 3.0, 1.5)


# ---------------------------------------------------------------- criterion


def _criterion(**kwargs) -> MaskCriterion:
    matcher = HungarianMatcher(class_weight=1.0, mask_weight=1.0, dice_weight=1.0, num_points=64)
    return MaskCriterion(matcher=matcher, num_points=64, **kwargs)


def test_criterion_perfect_prediction_and_class_loss_by_hand() -> None:
    # A full mask: sampled values do not depend on where the points fall (at a mask's edge
    # bilinear sampling mixes both sides, so only a constant mask gives exactly zero loss).
    target = torch.ones(1, 8, 8, dtype=torch.bool)
    masks = torch.stack([BIG * (2 * target[0].float() - 1), torch.full((8, 8), -BIG)])[None]
    class_logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 3.0]])  # K = 2 (+ no object)
    layer = LayerPrediction(class_logits=[class_logits], mask_logits=masks)
    targets = [MaskTargets(classes=torch.tensor([0]), masks=target)]
    losses = _criterion()([layer], targets, generator=torch.Generator().manual_seed(0))
    assert float(losses["loss_mask"]) == pytest.approx(0.0, abs=1e-6)
    assert float(losses["loss_dice"]) == pytest.approx(0.0, abs=1e-6)
    assert float(losses["loss_projection"]) == 0.0
    # Query 0 -> class 0 (weight 1), query 1 -> no object (weight 0.1); weighted mean.
    ce0 = -math.log(math.exp(5) / (math.exp(5) + 2))
    ce1 = -math.log(math.exp(3) / (math.exp(3) + 2))
    assert float(losses["loss_class"]) == pytest.approx((ce0 + 0.1 * ce1) / 1.1, rel=1e-5)
    assert float(losses["num_masks"]) == 1 and float(losses["num_images"]) == 1


def test_criterion_box_targets_aux_layers_and_image_weights() -> None:
    box = torch.tensor([[1.0, 2.0, 5.0, 5.0]])
    masks = torch.full((1, 2, 6, 8), -BIG)
    masks[0, 0, 2:5, 1:3] = BIG  # left half of the box: projection loss 1/3 (x) + 0 (y)
    class_logits = torch.tensor([[5.0, 0.0], [0.0, 5.0]])  # K = 1
    layer = LayerPrediction(class_logits=[class_logits], mask_logits=masks)
    targets = [MaskTargets(classes=torch.tensor([0]), boxes=box, box_only=True)]
    criterion = _criterion()
    one = criterion([layer], targets)
    assert float(one["loss_projection"]) == pytest.approx(1 / 3, abs=1e-5)
    assert float(one["loss_mask"]) == 0.0 and float(one["num_boxes"]) == 1
    # Every auxiliary layer adds its own (here identical) losses.
    two = criterion([layer, layer], targets)
    for key in ("loss_class", "loss_projection"):
        assert float(two[key]) == pytest.approx(2 * float(one[key]), rel=1e-6)
    weighted = criterion([layer], targets, image_weights=torch.tensor([3.0]))
    assert float(weighted["loss_projection"]) == pytest.approx(1.0, abs=1e-5)
    total = criterion.total(one, {"num_images": 1, "num_masks": 0, "num_boxes": 2})
    expected = 2.0 * float(one["loss_class"]) + 5.0 * float(one["loss_projection"]) / 2
    assert float(total) == pytest.approx(expected, rel=1e-6)


def test_criterion_gradients_reach_masks_and_classes() -> None:
    g = torch.Generator().manual_seed(0)
    masks = torch.randn(2, 4, 8, 8, generator=g, requires_grad=True)
    logits = [
        torch.randn(4, 3, generator=g, requires_grad=True),
        torch.randn(4, 4, requires_grad=True),
    ]
    target = torch.zeros(2, 16, 16, dtype=torch.bool)  # targets at 4x the logits' resolution
    target[0, :8], target[1, 8:] = True, True
    targets = [
        MaskTargets(classes=torch.tensor([0, 1]), masks=target),
        MaskTargets(
            classes=torch.tensor([2]), boxes=torch.tensor([[0.0, 0.0, 4.0, 4.0]]), box_only=True
        ),
    ]
    criterion = _criterion(mask_loss="focal")
    # Per-image lists (as after MERGE) give what one [B, Q, H, W] tensor gives.
    as_list = LayerPrediction(class_logits=logits, mask_logits=[masks[0], masks[1]])
    as_tensor = LayerPrediction(class_logits=logits, mask_logits=masks)
    losses = criterion([as_list], targets, generator=torch.Generator().manual_seed(5))
    same = criterion([as_tensor], targets, generator=torch.Generator().manual_seed(5))
    for key in ("loss_class", "loss_mask", "loss_dice", "loss_projection"):
        torch.testing.assert_close(losses[key], same[key])
    # The box image's projection loss is that of its matched query.
    ((query, _),) = criterion.matcher([logits[1]], masks[1:], targets[1:])
    expected = box_projection_loss(masks[1, query].detach(), targets[1].boxes)
    assert float(losses["loss_projection"].detach()) == pytest.approx(
        float(expected.sum()), rel=1e-6
    )
    counts = target_counts(targets)
    assert counts == {"num_images": 2.0, "num_masks": 2.0, "num_boxes": 1.0}
    criterion.total(losses, counts).backward()
    assert masks.grad is not None and bool(masks.grad[0].abs().sum() > 0)
    assert bool(masks.grad[1].abs().sum() > 0)  # the box image's matched query
    assert all(t.grad is not None for t in logits)


def test_batched_step_equals_the_per_image_call_and_splits_by_tag() -> None:
    g = torch.Generator().manual_seed(1)
    masks = torch.zeros(3, 2, 16, 16, dtype=torch.bool)
    masks[:, 0, :8], masks[:, 1, 8:] = True, True
    targets = [
        MaskTargets(classes=torch.tensor([0, 1]), masks=masks[0]),
        MaskTargets(classes=torch.tensor([2]), masks=masks[1, :1]),
        MaskTargets(classes=torch.zeros(0, dtype=torch.int64), masks=masks[2, :0]),
    ]
    layers = [
        LayerPrediction(
            class_logits=torch.randn(3, 4, 4, generator=g),
            mask_logits=torch.randn(3, 4, 8, 8, generator=g),
        )
        for _ in range(2)
    ]
    criterion = _criterion()
    per_image = criterion(layers, targets, generator=torch.Generator().manual_seed(7))
    batch = stack_targets(targets)
    groups = [
        MatchGroup(
            class_logits=layer.class_logits,
            mask_logits=layer.mask_logits,
            images=[0, 1, 2],
            segment=i,
        )
        for i, layer in enumerate(layers)
    ]
    (batched,) = criterion.step(
        groups, batch, num_tags=1, generator=torch.Generator().manual_seed(7)
    )
    for key in LOSS_KEYS:  # same points, summed in another order
        torch.testing.assert_close(batched[key], per_image[key], rtol=1e-5, atol=1e-6)
    # images 0 and 1 under tag 0 (weight 2), image 2 under tag 1: tag sums split the total
    split = [
        MatchGroup(
            class_logits=layer.class_logits[rows],
            mask_logits=layer.mask_logits[rows],
            images=images,
            weight=weight,
            tag=tag,
            segment=2 * i + tag,
        )
        for i, layer in enumerate(layers)
        for tag, (rows, images, weight) in enumerate([([0, 1], [0, 1], 2.0), ([2], [2], 1.0)])
    ]
    first, second = criterion.step(
        split, batch, num_tags=2, generator=torch.Generator().manual_seed(3)
    )
    assert float(second["loss_mask"]) == 0.0  # image 2 has no targets
    assert float(second["loss_class"]) > 0  # ... but its proposals learn "no object"
    weighted = criterion(
        layers,
        targets[:2],
        image_weights=torch.tensor([2.0, 2.0]),
        generator=torch.Generator().manual_seed(3),
    )
    for key in LOSS_KEYS:  # the same draws: tag 0 is the weighted call on images 0 and 1
        torch.testing.assert_close(first[key], weighted[key], rtol=1e-5, atol=1e-6)
