"""MS3 losses on hand-sized inputs: FIFO memory bank, eq. 4 weights, eq. 5-6 targets, eq. 7."""

from __future__ import annotations

import math

import pytest
import torch

from babelseg.losses.memory_bank import ClassMemoryBank
from babelseg.losses.multi_label import (
    class_text_similarity,
    extra_positive_weight,
    multi_label_targets,
    multi_positive_cross_entropy_sum,
    positive_pairs,
    weighted_multi_positive_cross_entropy_sum,
)


def _rows(*values: float) -> torch.Tensor:
    return torch.tensor([[float(v), -float(v)] for v in values])


def test_memory_bank_is_a_fifo_per_class():
    bank = ClassMemoryBank(num_classes=2, size=3, dim=2)
    bank.enqueue(_rows(1, 2, 3), torch.tensor([0, 0, 1]))  # a=1, b=2 -> class 0; c=3 -> class 1
    assert bank.count.tolist() == [2, 1] and bank.pointer.tolist() == [2, 1]
    bank.enqueue(_rows(4, 5), torch.tensor([0, 0]))  # d fills slot 2, e overwrites a (slot 0)
    torch.testing.assert_close(bank.entries[0], _rows(5, 2, 4))
    assert bank.count.tolist() == [3, 1] and bank.pointer.tolist() == [1, 1]
    torch.testing.assert_close(bank.entries[1], torch.cat([_rows(3), torch.zeros(2, 2)]))
    bank.enqueue(_rows(6, 7, 8, 9), torch.tensor([0, 0, 0, 0]))  # > size: the last 3 stay
    torch.testing.assert_close(bank.entries[0], _rows(9, 7, 8))
    assert bank.pointer.tolist() == [1, 1] and bank.count.tolist() == [3, 1]
    assert bank.valid().tolist() == [True, True]
    torch.testing.assert_close(bank.class_means(), _rows(8, 3))  # (9+7+8)/3, and c alone


def test_memory_bank_is_saved_with_the_weights():
    bank = ClassMemoryBank(num_classes=2, size=2, dim=2)
    bank.enqueue(_rows(1, 2, 3), torch.tensor([1, 1, 1]))
    other = ClassMemoryBank(num_classes=2, size=2, dim=2)
    other.load_state_dict(bank.state_dict())
    assert set(bank.state_dict()) == {"entries", "count", "pointer", "previous"}
    torch.testing.assert_close(other.entries[1], _rows(2, 3))  # 3 rows, room for 2: the last 2
    assert other.pointer.tolist() == [0, 0] and other.count.tolist() == [0, 2]


def test_visual_embedding_weights_entries_by_similarity_to_the_old_one():
    bank = ClassMemoryBank(num_classes=3, size=4, dim=2)
    bank.enqueue(
        torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.6, 0.8]]), torch.tensor([0, 0, 1, 1])
    )
    # no V^old yet: plain means; class 2 is empty
    torch.testing.assert_close(
        bank.visual_embeddings(), torch.tensor([[0.5, 0.5], [0.8, 0.4], [0.0, 0.0]])
    )
    bank.remember(torch.tensor([[2.0, 0.0], [0.0, 3.0], [0.0, 0.0]]))
    # class 0: weights cos([1,0],[1,0]) = 1 and cos([0,1],[1,0]) = 0 -> ([1,0] + 0) / 2
    # class 1: weights 0 and 0.8 -> (0.8 * [0.6, 0.8]) / 2
    torch.testing.assert_close(
        bank.visual_embeddings(), torch.tensor([[0.5, 0.0], [0.24, 0.32], [0.0, 0.0]])
    )


def test_multi_label_targets_follow_eq_6_with_a_one_way_relation():
    # union classes: 0 "car" (dataset A); 1 "vehicle", 2 "tree" (dataset B)
    text = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0]])
    means = torch.tensor([[0.6, 0.8, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0]])
    s = class_text_similarity(means, text)
    torch.testing.assert_close(
        s, torch.tensor([[0.6, 0.96, 0.0], [0.8, 1.0, 0.0], [0.0, 0.0, 1.0]])
    )
    a = multi_label_targets(s, torch.tensor([0]))
    b = multi_label_targets(s, torch.tensor([1, 2]))
    assert a.tolist() == [[True, True, False]]  # car pixels score vehicle (0.96) >= car (0.6)
    assert b.tolist() == [[False, True, False], [False, False, True]]  # not vehicle -> car
    # a class of the same dataset never becomes a positive, however similar
    s2 = s.clone()
    s2[2, 1] = 5.0
    assert multi_label_targets(s2, torch.tensor([1, 2]))[1].tolist() == [False, False, True]
    # an unmeasured class (empty bank) keeps only itself
    valid = torch.tensor([False, True, True])
    assert multi_label_targets(s, torch.tensor([0]), valid=valid).tolist() == [[True, False, False]]


def test_multi_positive_cross_entropy_by_hand():
    logits = torch.tensor([[1.0, 2.0, 0.0]])
    e1, e2 = math.e, math.e**2
    both = multi_positive_cross_entropy_sum(logits, torch.tensor([[True, True, False]]))
    assert float(both) == pytest.approx(math.log((e1 + e2 + 1) / (e1 + e2)), abs=1e-6)
    assert float(both) == pytest.approx(0.094339, abs=1e-5)
    one = multi_positive_cross_entropy_sum(logits, torch.tensor([[True, False, False]]))
    assert float(one) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits, torch.tensor([0]))), abs=1e-6
    )
    # class 2 left out: numerator and denominator over {0, 1} only
    allowed = torch.tensor([True, True, False])
    only = multi_positive_cross_entropy_sum(
        logits, torch.tensor([[True, False, False]]), allowed=allowed
    )
    assert float(only) == pytest.approx(math.log((e1 + e2) / e1), abs=1e-6)
    # rows without an allowed positive are skipped, and the sum is over rows
    two = multi_positive_cross_entropy_sum(
        torch.cat([logits, logits]),
        torch.tensor([[True, False, False], [False, False, True]]),
        allowed=allowed,
    )
    assert float(two) == pytest.approx(float(only), abs=1e-6)


def test_extra_positive_weight_waits_then_ramps_linearly():
    weights = [extra_positive_weight(step, start=3, ramp=4) for step in range(9)]
    assert weights == [0.0, 0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert extra_positive_weight(2, start=3, ramp=0) == 0.0
    assert extra_positive_weight(3, start=3, ramp=0) == 1.0


def test_multi_label_cap_keeps_the_most_similar_extra_positives():
    # class 0 of dataset A; classes 1-3 of dataset B all score >= its own 0.1
    s = torch.tensor(
        [[0.1, 0.5, 0.9, 0.3], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    )
    own = torch.tensor([0])
    assert multi_label_targets(s, own).tolist() == [[True, True, True, True]]
    assert multi_label_targets(s, own, max_extra=2).tolist() == [[True, True, True, False]]
    assert multi_label_targets(s, own, max_extra=1).tolist() == [[True, False, True, False]]
    assert multi_label_targets(s, own, max_extra=0).tolist() == [[True, False, False, False]]
    with pytest.raises(ValueError, match="multi_label_max_extra"):
        multi_label_targets(s, own, max_extra=-1)


def test_weighted_extra_positives_interpolate_between_eq_1_and_eq_7():
    logits = torch.tensor([[1.0, 2.0, 0.0]])
    own, extra = torch.tensor([0]), torch.tensor([[False, True, False]])
    e1, e2 = math.e, math.e**2

    def loss(w: float) -> float:
        return float(weighted_multi_positive_cross_entropy_sum(logits, own, extra, extra_weight=w))

    ce = float(torch.nn.functional.cross_entropy(logits, own))
    assert loss(0.0) == pytest.approx(ce, abs=1e-6)
    eq7 = float(multi_positive_cross_entropy_sum(logits, torch.tensor([[True, True, False]])))
    assert loss(1.0) == pytest.approx(eq7, abs=1e-6)
    assert loss(0.5) == pytest.approx(math.log((e1 + e2 + 1) / (e1 + 0.5 * e2)), abs=1e-6)
    # a class that is not allowed leaves numerator and denominator; rows of it are skipped
    allowed = torch.tensor([True, False, True])
    masked = weighted_multi_positive_cross_entropy_sum(
        logits, own, extra, extra_weight=1.0, allowed=allowed
    )
    assert float(masked) == pytest.approx(math.log((e1 + 1) / e1), abs=1e-6)
    skipped = weighted_multi_positive_cross_entropy_sum(
        logits, torch.tensor([1]), extra, extra_weight=1.0, allowed=allowed
    )
    assert float(skipped) == 0.0


def test_positive_pairs_name_every_label_of_the_other_datasets_behind_a_union_class():
    # union: 0 car (a, c), 1 road (a), 2 vehicle (b); a's car gains b's vehicle, b's vehicle
    # gains the union car that a and c share; own classes are never pairs
    classes = {"a": [0, 1], "b": [2], "c": [0]}
    positives = {
        "a": torch.tensor([[True, False, True], [False, True, False]]),
        "b": torch.tensor([[True, False, True]]),
        "c": torch.tensor([[True, False, False]]),
    }
    assert positive_pairs(positives, classes) == [
        ["a", 0, "b", 0],
        ["b", 0, "a", 0],
        ["b", 0, "c", 0],
    ]


def test_recognised_only_keeps_extra_positives_of_classes_nearest_their_own_text():
    # union classes: 0 road (dataset a), 1 person (a), 2 road (b), 3 pedestrian (b)
    similarity = torch.tensor(
        [
            [0.9, 0.1, 0.8, 0.0],  # a: road, nearest its own text; b's road scores 0.8
            [0.7, 0.3, 0.7, 0.6],  # a: person, nearest a's road text: not recognised
            [0.8, 0.0, 0.9, 0.1],
            [0.1, 0.5, 0.1, 0.4],  # b: pedestrian, recognised, a's person scores higher
        ]
    )
    a, b = torch.tensor([0, 1]), torch.tensor([2, 3])
    printed = multi_label_targets(similarity, a)
    assert printed[1].tolist() == [False, True, True, True]  # eq. 6: road and pedestrian of b
    gated = multi_label_targets(similarity, a, recognised_only=True)
    assert gated.tolist() == [[True, False, False, False], [False, True, False, False]]
    gated_b = multi_label_targets(similarity, b, recognised_only=True)
    assert gated_b[1].tolist() == [False, True, False, True]  # pedestrian -> person stays
