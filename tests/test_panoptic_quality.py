"""Panoptic quality on hand-sized maps (counts done by hand) and on the COCO panoptic sample."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from babelseg.evaluation.coco_io import (
    PanopticWriter,
    categories_isthing,
    id_to_rgb,
    iter_panoptic,
    read_panoptic_json,
)
from babelseg.evaluation.panoptic import (
    PanopticQuality,
    evaluate_panoptic_files,
    format_pq_table,
    panoptic_entry,
)

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
COCO = FIXTURES / "coco_panoptic_sample"

CATS = {1: True, 2: True, 10: False, 11: False, 12: False}  # car, person, sky, road, grass


def seg(sid: int, cat: int, crowd: int = 0) -> dict:
    return {"id": sid, "category_id": cat, "iscrowd": crowd}


def one_class(gt, gt_segs, pred, pred_segs, cats=None) -> PanopticQuality:
    pq = PanopticQuality(cats or {1: True, 2: True})
    pq.update(
        gt_ids=np.array(gt), gt_segments=gt_segs, pred_ids=np.array(pred), pred_segments=pred_segs
    )
    return pq


def counts(pq: PanopticQuality, cat: int) -> tuple[int, int, int, float]:
    tp, fp, fn, iou = pq.stats[list(pq.categories).index(cat)]
    return int(tp), int(fp), int(fn), float(iou)


# ------------------------------------------------------------------ matching rules
def test_iou_must_be_strictly_above_half():
    gt = [[1, 1, 1, 1]]
    # pred covers 2 of 4 gt pixels: IoU = 2 / 4 = 0.5 -> no match (FN + FP)
    pq = one_class(gt, [seg(1, 1)], [[5, 5, 0, 0]], [seg(5, 1)])
    assert counts(pq, 1) == (0, 1, 1, 0.0)
    # 3 of 4: IoU 0.75 -> TP
    pq = one_class(gt, [seg(1, 1)], [[5, 5, 5, 0]], [seg(5, 1)])
    assert counts(pq, 1) == (1, 0, 0, 0.75)


def test_category_must_agree():
    pq = one_class([[1, 1]], [seg(1, 1)], [[5, 5]], [seg(5, 2)])
    assert counts(pq, 1) == (0, 0, 1, 0.0)
    assert counts(pq, 2) == (0, 1, 0, 0.0)


def test_pred_pixels_on_void_leave_the_union():
    # gt: 2 px of segment 1, 2 px VOID; pred covers all 4. union = 4 + 2 - 2 - 2 = 2 -> IoU 1.
    pq = one_class([[1, 1, 0, 0]], [seg(1, 1)], [[5, 5, 5, 5]], [seg(5, 1)])
    assert counts(pq, 1) == (1, 0, 0, 1.0)
    # Without the VOID rule this would be 2 / 4 = 0.5, no match.


def test_crowd_is_never_a_false_negative_and_absorbs_same_class_predictions():
    gt = [[1, 1, 1, 1, 2, 2]]
    gt_segs = [seg(1, 1, crowd=1), seg(2, 2)]
    # pred 5 (car) lies on the car crowd -> ignored; gt person 2 unmatched -> FN; crowd not FN.
    pq = one_class(gt, gt_segs, [[5, 5, 5, 5, 0, 0]], [seg(5, 1)])
    assert counts(pq, 1) == (0, 0, 0, 0.0)
    assert counts(pq, 2) == (0, 0, 1, 0.0)
    # The same pixels predicted as person: the crowd is not of its class -> FP person.
    pq = one_class(gt, gt_segs, [[5, 5, 5, 5, 0, 0]], [seg(5, 2)])
    assert counts(pq, 2) == (0, 1, 1, 0.0)


def test_ignore_needs_more_than_half_on_void_or_crowd():
    gt = [[0, 1, 1, 1, 3, 3]]  # VOID, car crowd (3 px), person 3
    gt_segs = [seg(1, 1, crowd=1), seg(3, 2)]
    # car pred: 1 px VOID + 1 px crowd + 2 px person = 2/4 = 0.5 -> not ignored -> FP
    pq = one_class(gt, gt_segs, [[5, 5, 0, 0, 5, 5]], [seg(5, 1)])
    assert counts(pq, 1) == (0, 1, 0, 0.0)
    # 1 VOID + 1 crowd + 1 person = 2/3 > 0.5 -> ignored
    pq = one_class(gt, gt_segs, [[5, 5, 0, 0, 5, 0]], [seg(5, 1)])
    assert counts(pq, 1) == (0, 0, 0, 0.0)
    # person pred half on VOID, half on person (IoU 1 after removing VOID): TP
    pq = one_class([[0, 3]], [seg(3, 2)], [[7, 7]], [seg(7, 2)])
    assert counts(pq, 2) == (1, 0, 0, 1.0)


# ------------------------------------------------------------------ two images by hand
def hand_pq() -> PanopticQuality:
    pq = PanopticQuality(CATS)
    gt1 = np.array(
        [
            [10, 10, 10, 10, 10, 10],
            [10, 10, 10, 10, 10, 10],
            [1, 1, 0, 11, 11, 11],
            [1, 1, 0, 11, 11, 11],
        ]
    )
    pred1 = np.array(
        [
            [7, 7, 7, 7, 7, 7],
            [7, 7, 7, 7, 8, 8],
            [3, 3, 3, 9, 9, 9],
            [3, 3, 3, 9, 9, 9],
        ]
    )
    pq.update(
        gt_ids=gt1,
        gt_segments=[seg(10, 10), seg(1, 1), seg(11, 11)],
        pred_ids=pred1,
        pred_segments=[seg(7, 10), seg(3, 1), seg(8, 11), seg(9, 11)],
    )
    gt2 = np.array([[2, 2, 5, 5], [2, 2, 5, 5]])
    pred2 = np.array([[0, 0, 6, 6], [0, 0, 6, 6]])
    pq.update(
        gt_ids=gt2,
        gt_segments=[seg(2, 2), seg(5, 2, crowd=1)],
        pred_ids=pred2,
        pred_segments=[seg(6, 2)],
    )
    return pq


def test_two_images_by_hand():
    # Image 1: sky pred 10 px inside the 12 px sky -> IoU 10/12, TP.
    #          car pred 6 px = 4 on car + 2 on VOID -> union 6 + 4 - 4 - 2 = 4, IoU 1, TP.
    #          road pred 9 = road exactly -> TP IoU 1; road pred 8 on sky (no VOID) -> FP.
    # Image 2: person pred on the person crowd -> ignored; person gt 2 -> FN; crowd not FN.
    m = hand_pq().compute()
    car, person, sky, road = (m.per_class[c] for c in (1, 2, 10, 11))
    assert (car.tp, car.fp, car.fn) == (1, 0, 0) and car.pq == pytest.approx(100.0)
    assert (person.tp, person.fp, person.fn) == (0, 0, 1)
    assert (person.pq, person.sq, person.rq) == (0.0, 0.0, 0.0)
    assert sky.pq == pytest.approx(100 * 10 / 12) and sky.rq == pytest.approx(100.0)
    assert road.pq == pytest.approx(100 / 1.5) and road.sq == pytest.approx(100.0)
    assert road.rq == pytest.approx(100 / 1.5)
    assert m.per_class[12] is None  # grass never seen: left out of the means
    assert (m.all.n, m.things.n, m.stuff.n) == (4, 2, 2)
    assert m.things.pq == pytest.approx(50.0) and m.things.sq == pytest.approx(50.0)
    assert m.stuff.pq == pytest.approx(75.0)
    assert m.stuff.sq == pytest.approx((100 * 10 / 12 + 100) / 2)
    assert m.stuff.rq == pytest.approx((100 + 100 / 1.5) / 2)
    assert m.all.pq == pytest.approx(62.5)
    assert m.all.sq == pytest.approx((100 + 0 + 100 * 10 / 12 + 100) / 4)
    assert m.all.rq == pytest.approx((100 + 0 + 100 + 100 / 1.5) / 4)
    assert m.num_images == 2
    entry = panoptic_entry(m, names={1: "car", 2: "person", 10: "sky", 11: "road", 12: "grass"})
    assert entry["task"] == "panoptic" and entry["PQ"] == pytest.approx(62.5)
    assert entry["per_class"]["grass"] is None and entry["PQ_th"] == pytest.approx(50.0)
    assert "62.5" in format_pq_table(m)


def test_state_merge_equals_one_accumulator():
    whole = hand_pq()
    a = PanopticQuality(CATS)
    b = PanopticQuality(CATS)
    b.load_state(whole.state())
    a.merge(b)
    assert a.compute().all.pq == pytest.approx(whole.compute().all.pq)
    assert a.num_images == 2
    a.reset()
    assert a.num_images == 0 and math.isnan(a.compute().all.pq)


def test_bad_input_names_the_problem():
    pq = PanopticQuality({1: True})
    with pytest.raises(ValueError, match="in the PNG but not in segments_info"):
        pq.update(gt_ids=np.array([[1, 2]]), gt_segments=[seg(1, 1)],
                  pred_ids=np.array([[0, 0]]), pred_segments=[])  # fmt: skip
    with pytest.raises(ValueError, match="in segments_info but not in the PNG"):
        pq.update(gt_ids=np.array([[1, 1]]), gt_segments=[seg(1, 1)],
                  pred_ids=np.array([[0, 0]]), pred_segments=[seg(4, 1)])  # fmt: skip
    with pytest.raises(ValueError, match="category_id 9"):
        pq.update(gt_ids=np.array([[1, 1]]), gt_segments=[seg(1, 9)],
                  pred_ids=np.array([[0, 0]]), pred_segments=[])  # fmt: skip
    with pytest.raises(ValueError, match="same size"):
        pq.update(gt_ids=np.zeros((2, 2), int), gt_segments=[],
                  pred_ids=np.zeros((2, 3), int), pred_segments=[])  # fmt: skip


def test_files_round_trip(tmp_path):
    cats = [{"id": 1, "name": "car", "isthing": 1}, {"id": 10, "name": "sky", "isthing": 0}]
    big = 70000  # ids above 65535 use the blue channel
    ids = np.array([[big, big, 0], [1, 1, 1]])
    gt = PanopticWriter(json_path=tmp_path / "gt.json", png_dir=tmp_path / "gt", categories=cats)
    gt.add(image_id=3, ids=ids, segments=[seg(big, 10), seg(1, 1)], file_name="a.png")
    gt.write()
    pj = read_panoptic_json(tmp_path / "gt.json")
    info = pj.annotations[3]["segments_info"]
    assert info[0]["area"] == 2 and info[0]["bbox"] == [0, 0, 2, 1]
    [(image_id, back, segments)] = list(iter_panoptic(tmp_path / "gt.json", tmp_path / "gt"))
    assert image_id == 3 and np.array_equal(back, ids) and segments[1]["category_id"] == 1
    assert id_to_rgb(np.array([[70000]])).tolist() == [[[112, 17, 1]]]
    pred = PanopticWriter(json_path=tmp_path / "p.json", png_dir=tmp_path / "p", categories=cats)
    pred.add(image_id=3, ids=np.array([[5, 5, 5], [0, 0, 0]]), segments=[seg(5, 10)])
    pred.write()
    m = evaluate_panoptic_files(
        gt_json=tmp_path / "gt.json", gt_dir=tmp_path / "gt",
        pred_json=tmp_path / "p.json", pred_dir=tmp_path / "p",
    )  # fmt: skip
    # sky: pred 3 px = 2 sky + 1 VOID -> IoU 1; car: FN.
    assert m.per_class[10].pq == pytest.approx(100.0) and m.per_class[1].fn == 1
    assert m.all.pq == pytest.approx(50.0)
    (tmp_path / "p.json").write_text(json.dumps({"annotations": []}))
    with pytest.raises(ValueError, match=r"no prediction .* image_id \[3\]"):
        evaluate_panoptic_files(gt_json=tmp_path / "gt.json", gt_dir=tmp_path / "gt",
                                pred_json=tmp_path / "p.json", pred_dir=tmp_path / "p")  # fmt: skip


# ------------------------------------------------------------------ COCO sample
coco_only = pytest.mark.skipif(not COCO.is_dir(), reason="shared/fixtures not present")


def coco_categories() -> dict[int, bool]:
    return categories_isthing(json.loads((COCO / "panoptic_coco_categories.json").read_text()))


@coco_only
def test_coco_sample_against_itself_is_100():
    m = evaluate_panoptic_files(
        gt_json=COCO / "panoptic_examples.json", gt_dir=COCO / "panoptic_examples",
        pred_json=COCO / "panoptic_examples.json", pred_dir=COCO / "panoptic_examples",
        categories=coco_categories(),
    )  # fmt: skip
    assert m.all.pq == pytest.approx(100.0) and m.all.sq == pytest.approx(100.0)
    assert (m.all.n, m.things.n, m.stuff.n) == (8, 4, 4)
    # The person crowds (and the horse crowd) are predicted too: ignored, not FP.
    assert (m.per_class[1].tp, m.per_class[1].fp, m.per_class[1].fn) == (26, 0, 0)


@coco_only
def test_coco_sample_perturbed_by_hand(tmp_path):
    """Image 142238: person 3937500 dropped; sports ball 16757838 relabelled kite (38).
    Image 439180: sky 11829830 shifted right by 10 px (vacated pixels unlabelled).

    Counts on the PNG: the shifted sky keeps 12310 of its 12912 px (602 leave the image),
    10858 on the ground-truth sky and 1452 on tree 2330219 (91045 px), none on VOID. So
    sky IoU = 10858 / (12310 + 12912 - 10858) = 10858 / 14364 and tree IoU = 89593 / 91045.
    """
    gt = read_panoptic_json(COCO / "panoptic_examples.json")
    w = PanopticWriter(json_path=tmp_path / "p.json", png_dir=tmp_path / "p")
    for image_id, ids, segments in iter_panoptic(COCO / "panoptic_examples.json",
                                                 COCO / "panoptic_examples"):  # fmt: skip
        ids = ids.copy()
        segments = [dict(s) for s in segments]
        if image_id == 142238:
            ids[ids == 3937500] = 0
            segments = [s for s in segments if s["id"] != 3937500]
            next(s for s in segments if s["id"] == 16757838)["category_id"] = 38
        else:
            sky = ids == 11829830
            assert sky.sum() == 12912
            shifted = np.zeros_like(sky)
            shifted[:, 10:] = sky[:, :-10]
            ids[sky] = 0
            ids[shifted] = 11829830
        w.add(image_id=image_id, ids=ids, segments=segments,
              file_name=gt.annotations[image_id]["file_name"])  # fmt: skip
    w.write()
    m = evaluate_panoptic_files(
        gt_json=COCO / "panoptic_examples.json", gt_dir=COCO / "panoptic_examples",
        pred_json=tmp_path / "p.json", pred_dir=tmp_path / "p", categories=coco_categories(),
    )  # fmt: skip
    sky_iou, tree_iou = 10858 / 14364, 89593 / 91045
    person, ball, kite = m.per_class[1], m.per_class[37], m.per_class[38]
    assert (person.tp, person.fp, person.fn) == (25, 0, 1)
    assert person.pq == pytest.approx(100 * 25 / 25.5)
    assert (ball.tp, ball.fp, ball.fn, ball.pq) == (0, 0, 1, 0.0)
    assert (kite.tp, kite.fp, kite.fn, kite.pq) == (0, 1, 0, 0.0)
    assert m.per_class[187].pq == pytest.approx(100 * (1 + sky_iou) / 2)  # 87.7958
    assert m.per_class[184].pq == pytest.approx(100 * (1 + tree_iou) / 2)  # 99.2026
    things_pq = (100 * 25 / 25.5 + 100 + 100 + 0 + 0) / 5  # person, truck, horse, ball, kite
    stuff_pq = (100 + 100 * (1 + tree_iou) / 2 + 100 * (1 + sky_iou) / 2 + 100) / 4
    assert (m.all.n, m.things.n, m.stuff.n) == (9, 5, 4)
    assert m.things.pq == pytest.approx(things_pq) and things_pq == pytest.approx(59.6078, abs=1e-4)
    assert m.things.sq == pytest.approx(60.0) and m.things.rq == pytest.approx(things_pq)
    assert m.stuff.pq == pytest.approx(stuff_pq) and stuff_pq == pytest.approx(96.7496, abs=1e-4)
    assert m.stuff.sq == pytest.approx(stuff_pq) and m.stuff.rq == pytest.approx(100.0)
    assert m.all.pq == pytest.approx((5 * things_pq + 4 * stuff_pq) / 9)
    assert m.all.pq == pytest.approx(76.1153, abs=1e-4)
    assert m.all.sq == pytest.approx((300 + 4 * stuff_pq) / 9)  # 76.3332
    assert m.all.rq == pytest.approx((5 * things_pq + 400) / 9)  # 77.5599
    assert m.all.sq == pytest.approx(76.3332, abs=1e-4)
    assert m.all.rq == pytest.approx(77.5599, abs=1e-4)
