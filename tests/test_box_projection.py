"""DaTaSeg's box projection loss (eq. 3) on hand-built masks and boxes."""

from __future__ import annotations

import pytest
import torch

from babelseg.losses.box_projection import box_projection_loss
from babelseg.matching.costs import box_profiles, pairwise_box_projection_cost

BIG = 30.0


def _mask(height: int, width: int, rows: slice, cols: slice) -> torch.Tensor:
    logits = torch.full((height, width), -BIG)
    logits[rows, cols] = BIG
    return logits


def test_mask_equal_to_its_box_costs_nothing() -> None:
    box = torch.tensor([[1.0, 2.0, 4.0, 5.0]])  # columns 1..3, rows 2..4
    mask = _mask(8, 8, slice(2, 5), slice(1, 4))
    assert float(box_projection_loss(mask[None], box)[0]) == pytest.approx(0.0, abs=1e-5)


def test_mask_on_the_left_half_of_its_box() -> None:
    # Box: columns 1..4, rows 2..4. Mask: columns 1..2, same rows. x-profile dice:
    # 1 - 2 * 2 / (2 + 4) = 1/3; y-profile identical: 0.
    box = torch.tensor([[1.0, 2.0, 5.0, 5.0]])
    mask = _mask(6, 8, slice(2, 5), slice(1, 3))
    assert float(box_projection_loss(mask[None], box)[0]) == pytest.approx(1 / 3, abs=1e-5)


def test_soft_mask_uses_squared_dice_denominator() -> None:
    # p = 0.5 everywhere on a 2 x 2 grid, box covers it all: each profile gives
    # 1 - 2 * (0.5 + 0.5) / (0.25 + 0.25 + 1 + 1) = 0.2; both profiles: 0.4.
    box = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    loss = box_projection_loss(torch.zeros(1, 2, 2), box)
    assert float(loss[0]) == pytest.approx(0.4, abs=1e-5)


def test_box_profiles_use_pixel_centres_and_never_vanish() -> None:
    # Centres at 0.5, 1.5, ...: [0.6, 2.4) holds only 1.5; [2.2, 2.4) holds none -> column 2.
    boxes = torch.tensor([[1.0, 0.0, 3.0, 2.0], [2.2, 1.0, 2.4, 1.1], [0.6, 0.0, 2.4, 3.0]])
    px, py = box_profiles(boxes, 3, 5)
    torch.testing.assert_close(
        px,
        torch.tensor([[0.0, 1, 1, 0, 0], [0, 0, 1, 0, 0], [0, 1, 0, 0, 0]]),
    )
    torch.testing.assert_close(py, torch.tensor([[1.0, 1, 0], [0, 1, 0], [1, 1, 1]]))


def test_pairwise_cost_matches_the_loss_and_prefers_the_right_box() -> None:
    masks = torch.stack(
        [_mask(8, 8, slice(0, 3), slice(0, 3)), _mask(8, 8, slice(4, 8), slice(5, 8))]
    )
    boxes = torch.tensor([[5.0, 4.0, 8.0, 8.0], [0.0, 0.0, 3.0, 3.0], [0.0, 0.0, 8.0, 8.0]])
    cost = pairwise_box_projection_cost(masks, boxes)
    assert cost.shape == (2, 3)
    for q in range(2):
        for t in range(3):
            loss = box_projection_loss(masks[q : q + 1], boxes[t : t + 1])[0]
            assert float(cost[q, t]) == pytest.approx(float(loss), abs=1e-6)
    assert float(cost[0, 1]) < 1e-5 and float(cost[1, 0]) < 1e-5
    assert float(cost[0, 0]) > 1.9  # disjoint profiles on both axes
