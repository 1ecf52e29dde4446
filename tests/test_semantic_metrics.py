"""Semantic mIoU on hand-computed examples, and the metrics report (table and JSON)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from babelseg.evaluation.report import (
    format_table,
    semantic_entry,
    summarize,
    write_metrics_json,
)
from babelseg.evaluation.semantic import SemanticConfusion

I = 255  # noqa: E741  (ignore)

# Pixels (gt, pred): (0,0) (0,1) (1,1) (1,ign) (ign,0) (2,2); class 3 appears nowhere.
GT = np.array([[0, 0, 1], [1, I, 2]])
PRED = np.array([[0, 1, 1], [I, 0, 2]])


def test_hand_computed_example() -> None:
    conf = SemanticConfusion(4, names=["road", "car", "sky", "tree"])
    conf.update(PRED, GT)
    np.testing.assert_array_equal(
        conf.matrix, [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    )
    np.testing.assert_array_equal(conf.missed, [0, 1, 0, 0])
    m = conf.compute()
    # road: TP 1, FN 1 -> 1/2.  car: TP 1, FP 1, FN 1 (predicted ignore) -> 1/3.  sky: 1/1.
    assert m.per_class_iou["road"] == pytest.approx(50.0)
    assert m.per_class_iou["car"] == pytest.approx(100.0 / 3)
    assert m.per_class_iou["sky"] == pytest.approx(100.0)
    assert m.per_class_iou["tree"] is None  # empty union: left out
    assert math.isnan(m.iou[3])
    assert m.miou == pytest.approx((50.0 + 100.0 / 3 + 100.0) / 3)  # 61.11
    assert m.pixel_accuracy == pytest.approx(60.0)  # 3 of 5 labelled pixels
    assert m.mean_accuracy == pytest.approx((50.0 + 50.0 + 100.0) / 3)
    assert m.num_pixels == 5 and m.num_images == 1


def test_ignore_gt_pixel_is_not_counted_whatever_the_prediction() -> None:
    a = SemanticConfusion(3)
    a.update(np.array([[0, 2]]), np.array([[0, I]]))
    m = a.compute()
    assert m.per_class_iou == {0: 100.0, 1: None, 2: None}
    assert m.miou == 100.0 and m.num_pixels == 1


def test_predicted_ignore_or_out_of_range_is_a_false_negative() -> None:
    conf = SemanticConfusion(2)
    conf.update(np.array([[I, 7, -1, 1]]), np.array([[0, 0, 0, 1]]))
    m = conf.compute()
    assert m.per_class_iou == {0: 0.0, 1: 100.0}  # class 0 gets no FP from them either
    assert m.miou == 50.0
    assert m.pixel_accuracy == 25.0


def test_false_positive_only_class_counts_as_zero_in_the_mean() -> None:
    conf = SemanticConfusion(3)
    conf.update(np.array([[0, 2]]), np.array([[0, 0]]))
    m = conf.compute()
    assert m.per_class_iou == {0: 50.0, 1: None, 2: 0.0}
    assert m.miou == pytest.approx(25.0)
    assert m.mean_accuracy == pytest.approx(50.0)  # only classes present in the ground truth


def test_two_images_equal_one_concatenated_image() -> None:
    g2 = np.array([[3, 3], [0, I]])
    p2 = np.array([[3, 0], [0, 0]])
    split = SemanticConfusion(4)
    split.update(PRED, GT)
    split.update(p2, g2)
    whole = SemanticConfusion(4)
    whole.update(
        np.concatenate([PRED.ravel(), p2.ravel()])[None],
        np.concatenate([GT.ravel(), g2.ravel()])[None],
    )
    np.testing.assert_array_equal(split.matrix, whole.matrix)
    np.testing.assert_array_equal(split.missed, whole.missed)
    assert split.compute().miou == pytest.approx(whole.compute().miou)
    assert split.num_images == 2
    # road: TP 1+1, FP 0+1 (the ignore pixel is no FP), FN 1+0 -> 2/4; car 1/3; sky 1;
    # tree: TP 1, FN 1 -> 1/2.
    assert split.compute().iou.tolist() == pytest.approx([50.0, 100.0 / 3, 100.0, 50.0])


def test_merge_and_state_equal_one_accumulator() -> None:
    g2 = np.array([[3, 3], [0, I]])
    p2 = np.array([[3, 0], [0, 0]])
    one = SemanticConfusion(4)
    one.update(PRED, GT)
    one.update(p2, g2)
    a, b = SemanticConfusion(4), SemanticConfusion(4)
    a.update(PRED, GT)
    b.update(p2, g2)
    merged = SemanticConfusion(4)
    merged.load_state(a.state() + b.state())
    a.merge(b)
    for other in (a, merged):
        np.testing.assert_array_equal(other.matrix, one.matrix)
        np.testing.assert_array_equal(other.missed, one.missed)
        assert other.num_images == 2
    with pytest.raises(ValueError, match="merge"):
        a.merge(SemanticConfusion(3))


def test_batches_and_torch_tensors() -> None:
    conf = SemanticConfusion(4)
    conf.update(torch.from_numpy(np.stack([PRED, PRED])), torch.from_numpy(np.stack([GT, GT])))
    assert conf.num_images == 2
    assert conf.compute().miou == pytest.approx((50.0 + 100.0 / 3 + 100.0) / 3)
    conf.reset()
    assert conf.num_images == 0 and conf.matrix.sum() == 0 and math.isnan(conf.compute().miou)


def test_input_errors() -> None:
    conf = SemanticConfusion(2)
    with pytest.raises(ValueError, match="shape"):
        conf.update(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\[5\]"):
        conf.update(np.zeros((1, 2)), np.array([[0, 5]]))
    with pytest.raises(ValueError, match="names"):
        SemanticConfusion(2, names=["a"])


# ---------------------------------------------------------------------- report
def _report() -> dict:
    a = SemanticConfusion(4, names=["road", "car", "sky", "tree"])
    a.update(PRED, GT)  # mIoU 61.11
    b = SemanticConfusion(2, names=["wall", "floor"])
    b.update(np.array([[0, 0]]), np.array([[0, 1]]))  # wall 50, floor 0 -> 25
    c = SemanticConfusion(2, names=["wall", "floor"])
    c.update(np.array([[1, 1]]), np.array([[1, 1]]))  # held out: 100
    return summarize(
        {
            "street": semantic_entry(a.compute()),
            "indoor": semantic_entry(b.compute()),
            "zero_shot": semantic_entry(c.compute(), heldout=True),
        }
    )


def test_summarize_means_skip_heldout_datasets() -> None:
    report = _report()
    street = report["datasets"]["street"]
    assert street["task"] == "semantic" and street["heldout"] is False
    assert street["per_class"]["tree"] is None
    assert street["mIoU"] == pytest.approx(61.1111, abs=1e-3)
    assert report["mean_mIoU"] == pytest.approx((street["mIoU"] + 25.0) / 2)
    assert report["mean_heldout_mIoU"] == pytest.approx(100.0)
    only_seen = summarize({"indoor": report["datasets"]["indoor"]})
    assert only_seen["mean_mIoU"] == pytest.approx(25.0) and only_seen["mean_heldout_mIoU"] is None
    with pytest.raises(ValueError, match="task"):
        summarize({"x": {"task": "depth", "mIoU": 1.0}})


def test_write_metrics_json_round_trips(tmp_path: Path) -> None:
    report = _report()
    path = write_metrics_json(tmp_path / "run" / "metrics.json", report)
    text = path.read_text()
    assert "NaN" not in text
    assert json.loads(text) == report
    # NaN values become null.
    nan = write_metrics_json(tmp_path / "nan.json", {"datasets": {}, "mean_mIoU": float("nan")})
    assert json.loads(nan.read_text()) == {"datasets": {}, "mean_mIoU": None}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.json", "run"]


def test_format_table_values() -> None:
    table = format_table(_report(), per_class=True)
    rows = [line.split() for line in table.splitlines()]
    assert rows[0] == ["dataset", "task", "metric", "value", "#images", "heldout"]
    assert ["street", "semantic", "mIoU", "61.11", "1", "no"] in rows
    assert ["indoor", "semantic", "mIoU", "25.00", "1", "no"] in rows
    assert ["zero_shot", "semantic", "mIoU", "100.00", "1", "yes"] in rows
    assert ["mean", "mIoU", "43.06", "no"] in rows
    assert ["mean", "mIoU", "100.00", "yes"] in rows
    assert ["tree", "-"] in rows and ["car", "33.33"] in rows
    assert ["tree", "-"] not in [line.split() for line in format_table(_report()).splitlines()]
