"""The evidence harness's statistics: paired t-intervals, verdicts, and the measures of a claim."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from evidence_harness.claims import label_iou, mean_score, own_run_scores  # noqa: E402
from evidence_harness.stats import paired_interval, verdict  # noqa: E402


def test_paired_interval_is_the_student_t_interval_of_the_mean_difference():
    got = paired_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n), sd = 1
    assert got.n == 3
    assert got.mean == pytest.approx(2.0)
    assert got.sd == pytest.approx(1.0)
    assert got.low == pytest.approx(2.0 - half, rel=1e-9)
    assert got.high == pytest.approx(2.0 + half, rel=1e-9)


def test_paired_interval_leaves_out_unscored_seeds_and_needs_two():
    got = paired_interval([float("nan"), 0.5, 1.5])
    assert got.n == 2 and got.mean == pytest.approx(1.0)
    single = paired_interval([2.0])
    assert single.n == 1 and math.isnan(single.low) and math.isnan(single.sd)
    assert paired_interval([]).n == 0


@pytest.mark.parametrize(
    ("diffs", "sign", "want"),
    [
        ([1.0, 1.2, 0.9], +1, "reproduced"),
        ([1.0, 1.2, 0.9], -1, "contradicted"),
        ([-1.0, -1.2, -0.9], +1, "contradicted"),
        ([-1.0, 2.0, 0.5], +1, "inconclusive"),
    ],
)
def test_verdict_follows_the_sign_and_whether_the_interval_excludes_zero(diffs, sign, want):
    assert verdict(paired_interval(diffs), sign, quick=False) == want


def test_verdict_of_quick_runs_and_of_one_seed_says_it_means_nothing():
    strong = paired_interval([5.0, 5.1, 4.9])
    assert "means nothing" in verdict(strong, +1, quick=True)
    assert verdict(paired_interval([5.0]), +1, quick=False).startswith("inconclusive")


def test_measures_read_scores_and_per_class_ious_from_metrics():
    metrics = {
        "a": {
            "datasets": {
                "x": {"mIoU": 40.0, "per_class": {"lorry": 10.0, "bus": None, "car": 30.0}},
                "y": {"mIoU": 60.0, "PQ": 20.0},
            }
        },
        "b": {"datasets": {"x": {"mIoU": 10.0}, "y": {"mIoU": 30.0}}},
    }
    assert mean_score("a", ["x", "y"], "mIoU")(metrics) == pytest.approx(50.0)
    assert math.isnan(mean_score("b", ["x", "y"], "PQ")(metrics))
    assert label_iou("a", {"x": ["lorry", "bus"]})(metrics) == pytest.approx(10.0)
    own = own_run_scores({"x": "b", "y": "a"}, {"x": "mIoU", "y": "PQ"})
    assert own(metrics) == pytest.approx(15.0)
