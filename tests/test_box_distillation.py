from __future__ import annotations

import math

import pytest
import torch

from babelseg.losses.box_distillation import (
    BoxDistillationHead,
    box_embedding_distillation,
    roi_average,
    text_targets,
)

V = torch.tensor([3.0, -1.0])
W = torch.tensor([-2.0, 5.0])


def _two_valued_map() -> torch.Tensor:
    """``float[2, 8, 8]``: V on cells y 2..4, x 2..5, W elsewhere.

    At stride 4 the V cells are image pixels x 8..24, y 8..20.
    """
    emb = W[:, None, None].expand(2, 8, 8).clone()
    emb[:, 2:5, 2:6] = V[:, None, None]
    return emb


@pytest.mark.parametrize("pooled_size", [1, 2, 3])
def test_grid_aligned_box_pools_exactly_its_value(pooled_size):
    box = torch.tensor([[8.0, 8.0, 24.0, 20.0]])
    pooled = roi_average(_two_valued_map(), box, stride=4, pooled_size=pooled_size)
    assert pooled.shape == (1, 2)
    assert torch.equal(pooled[0], V)


def test_bilinear_coordinates_on_a_ramp():
    # cell (i, j) holds j: the centre of cell j is at x = (j + 0.5) * stride
    emb = torch.arange(8.0).expand(8, 8)[None].clone()
    box = torch.tensor([[4.0, 0.0, 12.0, 32.0]])  # cells x 1..2, centre x = 2.0 cells -> 1.5
    for s in (1, 2):
        assert math.isclose(
            float(roi_average(emb, box, stride=4, pooled_size=s)), 1.5, rel_tol=1e-6
        )
    # a box that is not grid-aligned: x 5..9 px = 1.25..2.25 cells, centre 1.75 -> value 1.25
    box = torch.tensor([[5.0, 0.0, 9.0, 32.0]])
    assert math.isclose(float(roi_average(emb, box, stride=4, pooled_size=1)), 1.25, rel_tol=1e-6)


def test_target_equal_to_prediction_gives_zero_loss():
    emb = _two_valued_map()[None]
    boxes = [torch.tensor([[8.0, 8.0, 24.0, 20.0]])]
    loss, n = box_embedding_distillation(
        emb, boxes, (32, 32), [V[None] * 7.0], pooled_size=2
    )  # scale does not matter: both sides are normalised
    assert int(n) == 1
    assert float(loss) == pytest.approx(0.0, abs=1e-6)


def test_orthogonal_and_diagonal_targets_have_known_l1():
    emb = torch.zeros(2, 2, 4, 4)
    emb[:, 0] = 3.0  # every pixel is 3 * e1
    boxes = [torch.tensor([[0.0, 0.0, 8.0, 8.0], [4.0, 4.0, 16.0, 16.0]]), torch.zeros(0, 4)]
    targets = [torch.tensor([[0.0, 5.0], [1.0, 1.0]]), torch.zeros(0, 2)]
    loss, n = box_embedding_distillation(emb, boxes, (16, 16), targets, pooled_size=2)
    # e1 vs e2: |1| + |1| = 2;  e1 vs (1,1)/sqrt2: (1 - 1/sqrt2) + 1/sqrt2 = 1
    assert int(n) == 2
    assert float(loss) == pytest.approx(3.0, abs=1e-6)


def test_gradient_reaches_only_cells_inside_the_box():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(1, 3, 8, 8, generator=g).requires_grad_(True)
    boxes = [torch.tensor([[8.0, 4.0, 24.0, 16.0]])]  # cells x 2..5, y 1..3
    targets = [torch.randn(1, 3, generator=g)]
    loss, _ = box_embedding_distillation(emb, boxes, (32, 32), targets, pooled_size=3)
    loss.backward()
    inside = torch.zeros(8, 8, dtype=torch.bool)
    inside[1:4, 2:6] = True
    grad = emb.grad[0].abs().sum(0)
    assert torch.all(grad[~inside] == 0)
    assert torch.all(grad[inside] > 0)


def test_degenerate_and_outside_boxes_are_skipped():
    emb = _two_valued_map()[None]
    boxes = [
        torch.tensor(
            [
                [8.0, 8.0, 24.0, 20.0],  # good
                [10.0, 10.0, 10.5, 20.0],  # 0.5 px wide
                [40.0, 0.0, 60.0, 10.0],  # right of the 32-px image: clipped to zero width
                [-5.0, 8.0, 0.5, 20.0],  # clipped to 0.5 px
            ]
        )
    ]
    targets = [torch.stack([V, W, W, W])]
    loss, n = box_embedding_distillation(emb, boxes, (32, 32), targets, pooled_size=2)
    assert int(n) == 1
    assert float(loss) == pytest.approx(0.0, abs=1e-6)
    # a box partly outside is clipped, not skipped: x -8..24 -> 0..24
    loss, n = box_embedding_distillation(
        emb, [torch.tensor([[-8.0, 8.0, 24.0, 20.0]])], (32, 32), [V[None]], pooled_size=1
    )
    assert int(n) == 1


def test_projection_head_maps_to_the_teacher_dimension():
    head = BoxDistillationHead(2, 3)
    with torch.no_grad():
        head.proj.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
        head.proj.bias.copy_(torch.tensor([0.0, 0.0, 4.0]))
    emb = torch.zeros(1, 2, 4, 4)
    emb[:, 0] = 4.0  # pooled = (4, 0) -> projected (4, 0, 4) -> normalised (1, 0, 1) / sqrt2
    boxes = [torch.tensor([[0.0, 0.0, 16.0, 16.0]])]
    loss, n = box_embedding_distillation(
        emb, boxes, (16, 16), [torch.tensor([[1.0, 0.0, 1.0]])], projection=head
    )
    assert int(n) == 1 and float(loss.detach()) == pytest.approx(0.0, abs=1e-6)
    loss.backward()
    assert head.proj.weight.grad is not None
    with pytest.raises(ValueError, match="BoxDistillationHead"):
        box_embedding_distillation(emb, boxes, (16, 16), [torch.ones(1, 3)])


def test_square_head_starts_as_identity():
    head = BoxDistillationHead(4)
    x = torch.randn(5, 4)
    assert head.dim_in == head.dim_out == 4
    assert torch.allclose(head(x), x)


def test_no_usable_box_returns_zero_and_keeps_the_head_in_the_graph():
    head = BoxDistillationHead(2, 3)
    emb = torch.ones(2, 2, 4, 4)
    loss, n = box_embedding_distillation(
        emb,
        [torch.zeros(0, 4), torch.tensor([[1.0, 1.0, 1.2, 9.0]])],
        (16, 16),
        [torch.zeros(0, 3), torch.ones(1, 3)],
        projection=head,
    )
    assert int(n) == 0 and float(loss.detach()) == 0.0
    loss.backward()
    assert torch.equal(head.proj.weight.grad, torch.zeros(3, 2))


def test_text_teacher_gathers_label_embeddings():
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], requires_grad=True)
    out = text_targets(torch.tensor([2, 0, 2]), text)
    assert torch.equal(out, torch.tensor([[0.6, 0.8], [1.0, 0.0], [0.6, 0.8]]))
    assert not out.requires_grad
    assert text_targets(torch.zeros(0, dtype=torch.long), text).shape == (0, 2)
    with pytest.raises(ValueError, match=r"\[3\]"):
        text_targets(torch.tensor([0, 3]), text)


def test_map_size_must_fit_image_size_and_stride():
    boxes, targets = [torch.zeros(0, 4)], [torch.zeros(0, 2)]
    for h in (2, 3):  # floor and ceil of 10 / 4
        box_embedding_distillation(torch.zeros(1, 2, h, 3), boxes, (10, 10), targets)
    with pytest.raises(ValueError, match="stride"):
        box_embedding_distillation(torch.zeros(1, 2, 5, 3), boxes, (10, 10), targets)
    with pytest.raises(ValueError, match="per image"):
        box_embedding_distillation(torch.zeros(2, 2, 3, 3), boxes, (10, 10), targets)
