"""Hungarian matcher: hand-computed costs and assignments, size invariance, box-only targets."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.optimize import linear_sum_assignment

from babelseg.matching.costs import pairwise_box_projection_cost
from babelseg.matching.hungarian import HungarianMatcher, assign
from babelseg.matching.targets import MaskTargets, stack_targets

BIG = 10.0


def _class_logits() -> torch.Tensor:
    # Softmax probabilities [.7, .2, .1] and [.4, .5, .1] (K = 2 plus no object).
    return torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1]]))


def test_class_cost_alone_picks_the_identity() -> None:
    matcher = HungarianMatcher(class_weight=1.0, mask_weight=0.0, dice_weight=0.0, num_points=16)
    targets = MaskTargets(
        classes=torch.tensor([0, 1]), masks=torch.zeros(2, 4, 4, dtype=torch.bool)
    )
    masks = torch.zeros(2, 4, 4)
    cost = matcher.cost_matrix(_class_logits(), masks, targets)
    torch.testing.assert_close(cost, torch.tensor([[-0.7, -0.2], [-0.4, -0.5]]))
    ((rows, cols),) = matcher([_class_logits()], [masks], [targets])
    assert rows.tolist() == [0, 1] and cols.tolist() == [0, 1]


def test_mask_cost_overrides_the_class_cost() -> None:
    # Target 0 full, target 1 empty; query 0 predicts empty, query 1 full.
    matcher = HungarianMatcher(class_weight=1.0, mask_weight=1.0, dice_weight=0.0, num_points=16)
    target_masks = torch.stack([torch.ones(4, 4), torch.zeros(4, 4)]).bool()
    masks = torch.stack([torch.full((4, 4), -BIG), torch.full((4, 4), BIG)])
    targets = MaskTargets(classes=torch.tensor([0, 1]), masks=target_masks)
    cost = matcher.cost_matrix(_class_logits(), masks, targets)
    wrong = math.log1p(math.exp(BIG))  # CE of logit -10 against 1 (and of +10 against 0)
    right = math.log1p(math.exp(-BIG))
    expected = torch.tensor([[-0.7 + wrong, -0.2 + right], [-0.4 + right, -0.5 + wrong]])
    torch.testing.assert_close(cost, expected)
    ((rows, cols),) = matcher([_class_logits()], masks[None], [targets])
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]


def test_dice_cost_by_hand() -> None:
    matcher = HungarianMatcher(class_weight=0.0, mask_weight=0.0, dice_weight=1.0, num_points=8)
    targets = MaskTargets(classes=torch.tensor([0]), masks=torch.ones(1, 4, 4, dtype=torch.bool))
    # p = 0.5 at every point, t = 1 at 8 points: 1 - (2 * 4 + 1) / (4 + 8 + 1) = 4 / 13.
    cost = matcher.cost_matrix(_class_logits()[:1], torch.zeros(1, 4, 4), targets)
    assert float(cost[0, 0]) == pytest.approx(4 / 13, abs=1e-6)


def test_point_sampled_cost_does_not_grow_with_image_size() -> None:
    matcher = HungarianMatcher(class_weight=1.0, mask_weight=1.0, dice_weight=1.0, num_points=256)
    costs = []
    for size in (8, 64):
        # Constant masks: the sampled cost is the same at every resolution (a pixel sum would
        # grow 64x).
        masks = torch.stack([torch.full((size, size), 0.5), torch.full((size, size), -2.0)])
        target = torch.ones(1, size, size, dtype=torch.bool)
        targets = MaskTargets(classes=torch.tensor([1]), masks=target)
        g = torch.Generator().manual_seed(0)
        costs.append(matcher.cost_matrix(_class_logits(), masks, targets, g))
    torch.testing.assert_close(costs[0], costs[1])
    halves = []
    for size in (8, 64):
        # A left-half target, predicted by query 0: equal up to the bilinear edge band (1/8 of
        # the width at 8 px).
        target = torch.zeros(1, size, size, dtype=torch.bool)
        target[..., : size // 2] = True
        masks = torch.stack([BIG * (2 * target[0].float() - 1), torch.zeros(size, size)])
        targets = MaskTargets(classes=torch.tensor([1]), masks=target)
        g = torch.Generator().manual_seed(0)
        halves.append(matcher.cost_matrix(_class_logits(), masks, targets, g))
    torch.testing.assert_close(halves[0], halves[1], atol=0.15, rtol=0.0)
    assert float(halves[1][0, 0]) < float(halves[1][1, 0])


def test_box_only_targets_use_the_projection_cost() -> None:
    masks = torch.full((2, 8, 8), -BIG)
    masks[0, 4:8, 4:8] = BIG
    masks[1, 0:3, 0:3] = BIG
    boxes = torch.tensor([[0.0, 0.0, 3.0, 3.0], [4.0, 4.0, 8.0, 8.0]])
    targets = MaskTargets(classes=torch.tensor([0, 1]), boxes=boxes, box_only=True)
    matcher = HungarianMatcher(
        class_weight=1.0, mask_weight=1000.0, dice_weight=1000.0, projection_weight=2.0
    )
    cost = matcher.cost_matrix(_class_logits(), masks, targets)
    expected = torch.tensor([[-0.7, -0.2], [-0.4, -0.5]]) + 2.0 * pairwise_box_projection_cost(
        masks, boxes
    )
    torch.testing.assert_close(cost, expected)
    # The class cost prefers the identity; the boxes say query 0 -> box 1, query 1 -> box 0.
    ((rows, cols),) = matcher([_class_logits()], [masks], [targets])
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]


def test_per_image_label_spaces_empty_targets_and_bad_classes() -> None:
    matcher = HungarianMatcher(num_points=16)
    targets = [
        MaskTargets(classes=torch.tensor([3]), masks=torch.ones(1, 4, 4, dtype=torch.bool)),
        MaskTargets(classes=torch.zeros(0, dtype=torch.int64), masks=torch.zeros(0, 4, 4)),
    ]
    class_logits = [torch.zeros(3, 5), torch.zeros(3, 2)]  # K = 4 and K = 1
    out = matcher(class_logits, torch.zeros(2, 3, 4, 4), targets)
    assert len(out[0][0]) == 1 and out[0][1].tolist() == [0]
    assert out[1][0].numel() == 0 and out[1][0].dtype == torch.int64
    with pytest.raises(ValueError, match="out of range"):
        matcher([torch.zeros(3, 3)], torch.zeros(1, 3, 4, 4), targets[:1])
    with pytest.raises(ValueError, match="box_only"):
        MaskTargets(classes=torch.tensor([0]), box_only=True)


def test_batched_costs_equal_single_image_costs_and_assign_skips_invalid_queries() -> None:
    g = torch.Generator().manual_seed(0)
    matcher = HungarianMatcher(num_points=32)
    masks = torch.rand(3, 3, 8, 8, generator=g) > 0.5
    targets = stack_targets(
        [
            MaskTargets(classes=torch.tensor([0, 2, 1])[:n], masks=masks[i, :n])
            for i, n in enumerate((3, 2, 1))
        ]
    )
    class_logits = torch.randn(3, 5, 4, generator=g)
    mask_logits = torch.randn(3, 5, 4, 4, generator=g)
    coords = matcher.draw_points(3, torch.device("cpu"), g)
    batched = matcher.batch_costs(class_logits, mask_logits, targets, [0, 1, 2], coords)
    for b in range(3):
        single = matcher.batch_costs(
            class_logits[b : b + 1], mask_logits[b : b + 1], targets, [b], coords[b : b + 1]
        )
        n = targets.num_targets[b]
        torch.testing.assert_close(batched[b, :, :n], single[0, :, :n], rtol=1e-5, atol=1e-6)
    # queries 0 and 1 of image 0 do not exist: never matched, the rest as scipy on the valid rows
    valid = torch.ones(3, 5, dtype=torch.bool)
    valid[0, :2] = False
    (matched,) = assign([batched], [valid], [targets.num_targets])
    rows, cols = linear_sum_assignment(batched[0, 2:, :3].numpy())
    assert matched[0][0].tolist() == (rows + 2).tolist() and matched[0][1].tolist() == cols.tolist()
    assert [len(q) for q, _ in matched] == [3, 2, 1]
    bad = batched.clone()
    bad[1, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="Non-finite matching cost"):
        assign([bad], [None], [targets.num_targets])
