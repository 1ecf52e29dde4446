"""How alike class vectors are: Table 1's summaries and the within-dataset mean ms3 logs."""

from __future__ import annotations

import math

import pytest
import torch

from babelseg.labels.similarity import same_group_pairs, table1_start, within_group_similarity


def _unit(*rows: tuple[float, float]) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


def test_within_group_similarity_averages_only_pairs_inside_a_group():
    half = math.sqrt(0.5)
    vectors = _unit((1, 0), (half, half), (0, 1), (-1, 0))
    # group a: 0, 1 (cos 0.707); group b: 1, 2, 3 (cos 0.707, -0.707, 0); 0 and 2 never pair
    value = within_group_similarity(vectors, same_group_pairs([[0, 1], [1, 2, 3]], 4))
    assert float(value) == pytest.approx((half + half - half + 0.0) / 4, abs=1e-6)


def test_within_group_similarity_skips_invalid_classes_and_is_nan_without_pairs():
    vectors = _unit((1, 0), (0, 1), (1, 1))
    valid = torch.tensor([True, False, True])
    assert float(
        within_group_similarity(vectors, same_group_pairs([[0, 1, 2]], 3), valid)
    ) == pytest.approx(math.sqrt(0.5), abs=1e-6)
    assert math.isnan(
        float(within_group_similarity(vectors, same_group_pairs([[0], [1, 2]], 3), valid))
    )


def test_table1_start_reports_the_pairs_most_alike_under_the_frozen_encoder():
    frozen = _unit((1, 0), (1, 0.1), (0, 1))
    start = _unit((1, 0), (0, 1), (0, 1))
    table = table1_start(frozen, start, ["cat", "dog", "car"], count=1)
    assert table["pairs"] == [["cat", "dog"]]
    assert table["frozen_encoder"]["pairs"]["cat | dog"] == pytest.approx(0.995, abs=1e-3)
    assert table["before"]["pairs"]["cat | dog"] == pytest.approx(0.0, abs=1e-6)
