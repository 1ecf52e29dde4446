"""Post-processing of mask proposals: semantic scores, panoptic segments, instances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from babelseg.models.postprocess import instance_masks, panoptic_segments, semantic_scores

BIG = 10.0


def _mask(cells: list[tuple[int, int]], value: float = BIG) -> torch.Tensor:
    logits = torch.full((4, 4), -BIG)
    for r, c in cells:
        logits[r, c] = value
    return logits


def test_semantic_scores_by_hand_and_upsampled() -> None:
    # q0: p = [.6, .2] (+ .2 no object), sigmoid mask 0.5 everywhere; q1: [.1, .7], mask 0.75.
    probs = torch.tensor([[0.6, 0.2, 0.2], [0.1, 0.7, 0.2]])
    masks = torch.stack([torch.zeros(2, 3), torch.full((2, 3), math.log(3))])
    scores = semantic_scores(masks, probs, (4, 6))
    assert scores.shape == (2, 4, 6)
    torch.testing.assert_close(scores[0], torch.full((4, 6), 0.6 * 0.5 + 0.1 * 0.75))
    torch.testing.assert_close(scores[1], torch.full((4, 6), 0.2 * 0.5 + 0.7 * 0.75))


def test_panoptic_merges_stuff_drops_overlapped_and_weak_queries() -> None:
    # Classes: 0 sky (stuff), 1 road (stuff), 2 car (thing); last column = no object.
    probs = torch.tensor(
        [
            [0.90, 0.05, 0.00, 0.05],  # q0 sky: rows 0-1
            [0.80, 0.10, 0.00, 0.10],  # q1 sky: row 2, cols 0-1 -> joins q0's segment
            [0.00, 0.00, 0.95, 0.05],  # q2 car: row 3, cols 2-3
            [0.00, 0.10, 0.70, 0.20],  # q3 car: row 3, cols 1-3; keeps 1/3 of it -> dropped
            [0.05, 0.00, 0.05, 0.90],  # q4 no object: dropped
            [0.30, 0.40, 0.00, 0.30],  # q5 road at 0.4 <= 0.5: dropped
        ]
    )
    masks = torch.stack(
        [
            _mask([(r, c) for r in (0, 1) for c in range(4)]),
            _mask([(2, 0), (2, 1)]),
            _mask([(3, 2), (3, 3)]),
            _mask([(3, 1), (3, 2), (3, 3)]),
            _mask([(3, 0)]),
            _mask([(2, 2)]),
        ]
    )
    is_thing = torch.tensor([False, False, True])
    pred = panoptic_segments(
        masks, probs, (4, 4), is_thing=is_thing, object_mask_threshold=0.5, overlap_threshold=0.8
    )
    expected = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 2, 2]], dtype=np.int32)
    np.testing.assert_array_equal(pred.segment_ids, expected)
    assert [(s.id, s.category, s.is_thing) for s in pred.segments] == [
        (1, 0, False),
        (2, 2, True),
    ]
    assert pred.segments[0].score == pytest.approx(0.9)
    assert pred.segments[1].score == pytest.approx(0.95)
    # A looser overlap threshold keeps q3's remaining pixel as a second car.
    loose = panoptic_segments(
        masks, probs, (4, 4), is_thing=is_thing, object_mask_threshold=0.5, overlap_threshold=0.3
    )
    assert loose.segment_ids[3, 1] == 3 and loose.segments[2].category == 2
    # Two car queries stay two instances: ids are not merged for things.
    assert [s.id for s in loose.segments] == [1, 2, 3]


def test_panoptic_with_nothing_kept_is_empty() -> None:
    probs = torch.tensor([[0.1, 0.9]])
    pred = panoptic_segments(torch.zeros(1, 2, 2), probs, (2, 2), is_thing=torch.tensor([True]))
    assert pred.segments == [] and not pred.segment_ids.any()


def test_instances_top_k_order_and_scores() -> None:
    probs = torch.tensor([[0.6, 0.3, 0.1], [0.1, 0.5, 0.4], [0.2, 0.2, 0.6]])
    masks = torch.stack(
        [
            _mask([(0, 0), (0, 1), (1, 0), (1, 1)], value=math.log(3)),  # sigmoid 0.75
            _mask([(3, 3), (3, 2)]),
            _mask([(2, 2)]),
        ]
    )
    pred = instance_masks(masks, probs, (4, 4), top_k=3)
    # Top-3 (query, class) by probability: (0,0) .6, (1,1) .5, (0,1) .3; times mask scores
    # .75, sigmoid(10), .75 -> .45, .49998, .225.
    mask_score = 1 / (1 + math.exp(-BIG))
    assert pred.classes.tolist() == [1, 0, 1]
    np.testing.assert_allclose(pred.scores, [0.5 * mask_score, 0.45, 0.225], rtol=1e-5)
    assert pred.masks.shape == (3, 4, 4) and pred.masks.dtype == bool
    assert pred.masks[0].sum() == 2 and pred.masks[0, 3, 3]
    assert pred.masks[1].sum() == 4 and pred.masks[1, 0, 0]
    only_class_0 = instance_masks(
        masks, probs, (4, 4), top_k=3, allowed=torch.tensor([True, False])
    )
    assert only_class_0.classes.tolist() == [0, 0, 0]
    np.testing.assert_allclose(
        only_class_0.scores, [0.45, 0.2 * mask_score, 0.1 * mask_score], rtol=1e-5
    )
