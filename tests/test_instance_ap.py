"""Mask AP through pycocotools on hand-made masks and on the COCO sample's instances."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from babelseg.evaluation.coco_io import read_results_json, write_results_json
from babelseg.evaluation.instance import (
    evaluate_instance_files,
    instance_ap,
    instance_entry,
    masks_to_coco_results,
)

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
COCO_DIR = FIXTURES / "coco_panoptic_sample"
H = W = 20


def box_mask(y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def rle(mask: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in r["size"]], "counts": r["counts"].decode()}


def make_gt(masks: list[tuple[int, int, np.ndarray]], first_id: int = 0) -> dict:
    """``masks``: (image_id, category_id, mask); ids start at ``first_id`` (0 = the trap)."""
    return {
        "images": [{"id": i, "height": H, "width": W} for i in (1, 2)],
        "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
        "annotations": [
            {
                "id": first_id + k,
                "image_id": im,
                "category_id": c,
                "segmentation": rle(m),
                "iscrowd": 0,
            }  # no "area": filled in from the mask
            for k, (im, c, m) in enumerate(masks)
        ],  # fmt: skip
    }


def test_perfect_predictions_score_100_despite_annotation_id_0():
    objs = [(1, 3, box_mask(0, 0, 10, 10)), (1, 7, box_mask(12, 12, 20, 20)),
            (2, 3, box_mask(5, 5, 15, 15))]  # fmt: skip
    gt = make_gt(objs, first_id=0)
    preds = [{"image_id": i, "category_id": c, "segmentation": rle(m), "score": 0.9}
             for i, c, m in objs]  # fmt: skip
    before = copy.deepcopy((gt, preds))
    r = instance_ap(gt, preds)
    assert r["AP"] == pytest.approx(100.0) and r["AP50"] == pytest.approx(100.0)
    assert r["AP75"] == pytest.approx(100.0) and r["APs"] == pytest.approx(100.0)
    assert r["APm"] is None and r["APl"] is None  # no medium / large objects (area < 32^2)
    assert r["per_class"] == {3: pytest.approx(100.0), 7: pytest.approx(100.0)}
    assert (gt, preds) == before  # inputs untouched
    # The trap is real: raw pycocotools on the same ground truth counts the id-0 match as missed.
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        for a in coco.dataset["annotations"]:
            a["area"] = float(mask_utils.area(a["segmentation"]))
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(copy.deepcopy(preds)), iouType="segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] < 0.99


def test_iou_0_6_matches_at_50_not_at_75():
    gt_mask = box_mask(0, 0, 10, 10)  # 100 px
    pred_mask = box_mask(0, 0, 6, 10)  # 60 px inside it: IoU 0.6
    gt = make_gt([(1, 3, gt_mask)], first_id=1)
    r = instance_ap(gt, [{"image_id": 1, "category_id": 3, "segmentation": rle(pred_mask),
                          "score": 0.8}])  # fmt: skip
    assert r["AP50"] == pytest.approx(100.0)
    assert r["AP75"] == pytest.approx(0.0)
    # matched at thresholds 0.50, 0.55, 0.60 (IoU >= t) of the ten: AP = 3/10.
    assert r["AP"] == pytest.approx(30.0)


def test_false_positive_ranked_first_halves_precision():
    objs = [(1, 3, box_mask(0, 0, 10, 10))]
    gt = make_gt(objs, first_id=1)
    preds = [
        {"image_id": 1, "category_id": 3, "segmentation": rle(box_mask(12, 12, 20, 20)),
         "score": 0.9},  # FP, ranked first
        {"image_id": 1, "category_id": 3, "segmentation": rle(objs[0][2]), "score": 0.5},
    ]  # fmt: skip
    # precision at recall 1 is 1/2, interpolated over all 101 recall points -> AP 50.
    assert instance_ap(gt, preds)["AP"] == pytest.approx(50.0)


def test_empty_predictions_score_zero():
    gt = make_gt([(1, 3, box_mask(0, 0, 10, 10))], first_id=1)
    r = instance_ap(gt, [])
    assert r["AP"] == 0.0 and r["AP50"] == 0.0
    assert r["per_class"] == {3: 0.0, 7: None}  # dog has no ground truth
    assert r["num_predictions"] == 0


def test_masks_to_coco_results_round_trip(tmp_path):
    masks = np.stack([box_mask(0, 0, 4, 4), box_mask(10, 10, 12, 15)])
    res = masks_to_coco_results(masks=masks, classes=np.array([1, 0]),
                                scores=np.array([0.25, 0.75]), image_id=2,
                                category_ids=[3, 7])  # fmt: skip
    assert [r["category_id"] for r in res] == [7, 3]
    assert [r["score"] for r in res] == [0.25, 0.75]
    assert np.array_equal(mask_utils.decode(res[1]["segmentation"]).astype(bool), masks[1])
    path = write_results_json(tmp_path / "res.json", res)
    back = read_results_json(path)
    assert back == json.loads(json.dumps(res))
    gt = make_gt([(2, 7, masks[0]), (2, 3, masks[1])], first_id=1)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    r = evaluate_instance_files(gt_json=tmp_path / "gt.json", pred_json=path)
    assert r["AP"] == pytest.approx(100.0)
    entry = instance_entry(r, names={3: "cat", 7: "dog"})
    assert entry["task"] == "instance" and entry["per_class"]["dog"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="outside the 2 category_ids"):
        masks_to_coco_results(masks=masks, classes=np.array([2, 0]), scores=np.ones(2),
                              image_id=2, category_ids=[3, 7])  # fmt: skip


def test_errors_name_the_problem():
    gt = make_gt([(1, 3, box_mask(0, 0, 10, 10))], first_id=1)
    good = {"category_id": 3, "segmentation": rle(box_mask(0, 0, 5, 5)), "score": 1.0}
    with pytest.raises(ValueError, match=r"image ids \[99\]"):
        instance_ap(gt, [{**good, "image_id": 99}])
    with pytest.raises(ValueError, match=r"category ids \[5\]"):
        instance_ap(gt, [{**good, "image_id": 1, "category_id": 5}])
    small = rle(np.zeros((4, 4), dtype=bool))
    with pytest.raises(ValueError, match="size"):
        instance_ap(gt, [{**good, "image_id": 1, "segmentation": small}])


@pytest.mark.skipif(not COCO_DIR.is_dir(), reason="shared/fixtures not present")
def test_coco_sample_against_itself_is_100_with_crowds():
    gt = json.loads((COCO_DIR / "instances_from_panoptic.json").read_text())
    crowd = [a for a in gt["annotations"] if a["iscrowd"]]
    assert len(crowd) == 3
    preds = [{"image_id": a["image_id"], "category_id": a["category_id"],
              "segmentation": a["segmentation"], "score": 0.9}
             for a in gt["annotations"] if not a["iscrowd"]]  # fmt: skip
    # The crowd regions predicted with the top score: matched to the crowds, so ignored.
    preds += [{"image_id": a["image_id"], "category_id": a["category_id"],
               "segmentation": a["segmentation"], "score": 1.0} for a in crowd]  # fmt: skip
    r = instance_ap(gt, preds)
    assert r["AP"] == pytest.approx(100.0) and r["AP50"] == pytest.approx(100.0)
    assert {c for c, v in r["per_class"].items() if v is not None} == {1, 8, 19, 37}
    # Were the crowds ordinary objects, the three left unpredicted would be misses.
    no_crowd = copy.deepcopy(gt)
    for a in no_crowd["annotations"]:
        a["iscrowd"] = 0
    assert instance_ap(no_crowd, preds[:-3])["AP"] < 99.0
