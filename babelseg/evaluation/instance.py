"""Mask AP of instance segmentation through pycocotools ``COCOeval(iouType="segm")``.

The ground truth is a COCO instances dict (``images`` with ``height``/``width``,
``annotations`` with polygons or RLE and ``iscrowd``, ``categories``); predictions are COCO
results (``image_id``, ``category_id``, RLE ``segmentation``, ``score``). Conventions are
pycocotools': 10 IoU thresholds 0.50:0.05:0.95, 101 recall points, at most 100 detections per
image, detections matched to crowd regions are ignored, areas small < 32^2 <= medium < 96^2 <=
large (ground-truth ``area``).

Traps handled here: pycocotools treats a ground-truth annotation id of 0 as "unmatched" (the
matched id is stored as the match flag), so annotation ids are renumbered 1..N on a copy; it
crashes on an empty result list (``loadRes``), so no predictions score AP 0; it mutates the
result dicts, so they are copied.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from babelseg.evaluation.coco_io import load_json, read_results_json, records
from babelseg.evaluation.report import format_table, summarize

SUMMARY_KEYS: tuple[str, ...] = ("AP", "AP50", "AP75", "APs", "APm", "APl")
"""Keys of :func:`instance_ap`'s result, in ``COCOeval.stats`` order."""


def _segm_to_rle(segm: Any, height: int, width: int) -> dict[str, Any]:
    """Polygons, uncompressed or compressed RLE -> compressed RLE (pycocotools)."""
    if isinstance(segm, list):
        return mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
    if isinstance(segm, Mapping) and isinstance(segm.get("counts"), list):
        return mask_utils.frPyObjects(dict(segm), height, width)
    return dict(segm)


def _prepare_gt(gt: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A checked copy of the ground truth with ids 1..N, ``iscrowd`` and ``area`` filled in."""
    images = records(gt, "images", where)
    anns = records(gt, "annotations", where)
    cats = records(gt, "categories", where)
    sizes: dict[Any, tuple[int, int]] = {}
    for im in images:
        if "id" not in im or "height" not in im or "width" not in im:
            raise ValueError(f"{where}: image {im} needs 'id', 'height' and 'width'.")
        sizes[im["id"]] = (int(im["height"]), int(im["width"]))
    cat_ids = {c.get("id") for c in cats}
    out_anns = []
    for i, ann in enumerate(anns):
        a = copy.deepcopy(ann)
        if a.get("image_id") not in sizes:
            raise ValueError(
                f"{where}: annotation {ann.get('id', i)} has image_id {a.get('image_id')}, "
                "which is not in 'images'."
            )
        if a.get("category_id") not in cat_ids:
            raise ValueError(
                f"{where}: annotation {ann.get('id', i)} has category_id {a.get('category_id')}, "
                "which is not in 'categories'."
            )
        if not a.get("segmentation"):
            raise ValueError(
                f"{where}: annotation {ann.get('id', i)} has no segmentation; mask AP needs "
                "polygons or RLE for every ground-truth annotation."
            )
        a["id"] = i + 1  # pycocotools: id 0 would read as "not matched"
        a["iscrowd"] = int(a.get("iscrowd", 0))
        if "area" not in a:
            h, w = sizes[a["image_id"]]
            a["area"] = float(mask_utils.area(_segm_to_rle(a["segmentation"], h, w)))
        out_anns.append(a)
    return {"images": images, "annotations": out_anns, "categories": cats}


def _prepare_predictions(
    predictions: Sequence[Mapping[str, Any]], gt: Mapping[str, Any], where: str
) -> list[dict[str, Any]]:
    """Checked copies of the detections with compressed RLE of the image's size."""
    sizes = {im["id"]: (int(im["height"]), int(im["width"])) for im in gt["images"]}
    cat_ids = {c["id"] for c in gt["categories"]}
    unknown_images = sorted({p.get("image_id") for p in predictions} - set(sizes), key=str)
    if unknown_images:
        raise ValueError(
            f"{where}: predictions name image ids {unknown_images[:5]} that are not in the "
            "ground truth's images; predict the ground-truth images only."
        )
    unknown_cats = sorted({p.get("category_id") for p in predictions} - cat_ids, key=str)
    if unknown_cats:
        raise ValueError(
            f"{where}: predictions use category ids {unknown_cats[:5]} that are not in the "
            "ground truth's categories; map classes to the ground truth's category ids."
        )
    out = []
    for i, p in enumerate(predictions):
        if "segmentation" not in p or "score" not in p:
            raise ValueError(f"{where}: prediction {i} needs 'segmentation' and 'score'.")
        h, w = sizes[p["image_id"]]
        rle = _segm_to_rle(p["segmentation"], h, w)
        if [int(v) for v in rle.get("size", ())] != [h, w]:
            raise ValueError(
                f"{where}: prediction {i} (image_id {p['image_id']}) has a mask of size "
                f"{rle.get('size')} (HxW); the image is {h}x{w}. Resize masks to the image."
            )
        out.append(
            {
                "image_id": p["image_id"],
                "category_id": p["category_id"],
                "segmentation": rle,
                "score": float(p["score"]),
            }
        )
    return out


def _percent(value: float) -> float | None:
    """pycocotools' -1 (undefined) -> None; otherwise percent."""
    return None if value < 0 or math.isnan(value) else 100.0 * float(value)


def instance_ap(
    gt: Mapping[str, Any],
    predictions: Sequence[Mapping[str, Any]],
    *,
    where: str = "instance AP",
) -> dict[str, Any]:
    """Mask AP of detections against a COCO instances ground truth.

    Args:
        gt: COCO instances dict (``images``, ``annotations``, ``categories``); not modified.
        predictions: ``[{"image_id", "category_id", "segmentation": RLE, "score"}, ...]``;
            not modified. An empty list scores 0.
        where: Name of the source used in error messages (e.g. the file).

    Returns:
        ``{"AP", "AP50", "AP75", "APs", "APm", "APl": percent or None (undefined, e.g. no
        ground truth of that size), "per_class": {category id: AP or None}, "num_images",
        "num_predictions"}``. Per-class AP is the mean precision over IoU thresholds and recall
        points of that category (all areas, 100 detections), None when it has no
        (non-crowd) ground truth.

    Raises:
        ValueError: malformed ground truth, or predictions naming unknown images/categories or
            masks of the wrong size.
    """
    gt_clean = _prepare_gt(gt, where)
    dets = _prepare_predictions(predictions, gt_clean, where)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt_clean
        coco_gt.createIndex()
        if dets:
            coco_dt = coco_gt.loadRes(dets)
        else:
            coco_dt = COCO()
            coco_dt.dataset = {
                "images": gt_clean["images"],
                "categories": gt_clean["categories"],
                "annotations": [],
            }
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, iouType="segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    result: dict[str, Any] = {k: _percent(v) for k, v in zip(SUMMARY_KEYS, ev.stats[:6])}
    precision = ev.eval["precision"]  # [T, R, K, A, M]
    per_class: dict[Any, float | None] = {}
    for k, cat in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        key = cat.item() if isinstance(cat, np.generic) else cat
        per_class[key] = _percent(float(p.mean())) if p.size else None
    result["per_class"] = per_class
    result["num_images"] = len(gt_clean["images"])
    result["num_predictions"] = len(dets)
    return result


def masks_to_coco_results(
    *,
    masks: Any,
    classes: Any,
    scores: Any,
    image_id: Any,
    category_ids: Sequence[int],
) -> list[dict[str, Any]]:
    """Instance masks of one image as COCO results with compressed RLE.

    Args:
        masks: ``bool[N, H, W]`` (numpy or torch).
        classes: ``int[N]`` class indices into ``category_ids``.
        scores: ``float[N]`` confidences.
        image_id: The COCO image id.
        category_ids: Class index -> COCO category id.

    Returns:
        ``[{"image_id", "category_id", "segmentation": {"size": [H, W], "counts": str},
        "score"}, ...]``, JSON-ready.
    """
    m = _numpy(masks).astype(bool)
    c = _numpy(classes).astype(np.int64).reshape(-1)
    s = _numpy(scores).astype(np.float64).reshape(-1)
    if m.ndim != 3 or not (m.shape[0] == c.size == s.size):
        raise ValueError(
            f"masks [N, H, W], classes [N] and scores [N] must agree; got {m.shape}, "
            f"{c.shape}, {s.shape}."
        )
    if c.size and (c.min() < 0 or c.max() >= len(category_ids)):
        raise ValueError(
            f"Class indices {c.min()}..{c.max()} fall outside the {len(category_ids)} "
            "category_ids given."
        )
    if m.shape[0] == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(m.transpose(1, 2, 0).astype(np.uint8)))
    out = []
    for rle, ci, si in zip(rles, c, s):
        out.append(
            {
                "image_id": image_id,
                "category_id": int(category_ids[int(ci)]),
                "segmentation": {
                    "size": [int(v) for v in rle["size"]],
                    "counts": rle["counts"].decode(),
                },
                "score": float(si),
            }
        )
    return out


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def evaluate_instance_files(*, gt_json: str | Path, pred_json: str | Path) -> dict[str, Any]:
    """:func:`instance_ap` of a COCO results JSON against a COCO instances JSON.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: a file is malformed or the predictions do not fit the ground truth.
    """
    gt = load_json(gt_json, what="COCO instances JSON")
    predictions = read_results_json(pred_json)
    return instance_ap(gt, predictions, where=f"{gt_json} / {pred_json}")


def instance_entry(
    result: Mapping[str, Any],
    *,
    names: Mapping[Any, str] | None = None,
    heldout: bool = False,
) -> dict[str, Any]:
    """The ``metrics.json`` entry of one instance dataset (see ``evaluation/report.py``).

    Args:
        result: Output of :func:`instance_ap`.
        names: ``{category id: name}`` used as ``per_class`` keys (ids otherwise).
        heldout: Whether the dataset was held out of training.
    """
    names = names or {}
    entry: dict[str, Any] = {"task": "instance"}
    entry.update({k: result[k] for k in SUMMARY_KEYS})
    entry["per_class"] = {names.get(c, str(c)): v for c, v in result["per_class"].items()}
    entry["num_images"] = result["num_images"]
    entry["heldout"] = bool(heldout)
    return entry


def score_instance_files(
    *, gt_json: str | Path, pred_json: str | Path
) -> tuple[dict[str, Any], str]:
    """``babelseg score --task instance``: the report (``metrics.json`` schema, one dataset
    named after the ground-truth JSON, per-class AP by category name) and the text to print."""
    gt = load_json(gt_json, what="COCO instances JSON")
    result = instance_ap(gt, read_results_json(pred_json), where=f"{gt_json} / {pred_json}")
    names = {c["id"]: str(c.get("name", c["id"])) for c in records(gt, "categories", gt_json)}
    report = summarize({Path(gt_json).stem: instance_entry(result, names=names)})
    cells = [f"{k}={'-' if result[k] is None else format(result[k], '.1f')}" for k in SUMMARY_KEYS]
    text = "mask AP: " + "  ".join(cells) + f"  ({result['num_predictions']} predictions)"
    return report, text + "\n\n" + format_table(report, per_class=True)
