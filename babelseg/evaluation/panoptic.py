"""Panoptic quality (PQ, SQ, RQ) with the COCO panoptic conventions (panopticapi ``pq_compute``).

Per image, with segment ids ``0`` = VOID in the ground truth (and unlabelled in the prediction):

* a ground-truth segment ``g`` and a predicted segment ``p`` of the **same category** match when
  ``IoU > 0.5`` (strictly), with ``IoU = |g & p| / (|g| + |p| - |g & p| - |p & VOID|)``: the
  predicted pixels lying on VOID are left out of the union. Crowd segments never match. At
  IoU > 0.5 a segment matches at most one other, so there is no assignment problem;
* matched pairs are true positives (TP) and add their IoU to the category's IoU sum;
* unmatched, non-crowd ground-truth segments are false negatives (FN); **crowd** ground-truth
  segments are never false negatives;
* an unmatched predicted segment is **ignored** (neither TP nor FP) when more than half of its
  pixels lie on VOID or on crowd segments of its own category; otherwise it is a false positive.

Per category, over all images: ``PQ = sum IoU / (TP + FP/2 + FN/2)``, ``SQ = sum IoU / TP`` (0 when
TP = 0), ``RQ = TP / (TP + FP/2 + FN/2)``. Categories with ``TP + FP + FN = 0`` are left out of the
means (as the reference does); the means are over all / thing / stuff categories. Values are
percentages (0-100).

Differences from the reference, all for input it does not expect: segment areas are counted in
the PNG (the reference reads the ground truth's ``area`` from the JSON; both agree on valid COCO
files); a ground-truth id in the PNG but not in ``segments_info`` and a category outside
``categories`` are errors (the reference skips them silently); when a category has several crowd
segments in one image all of them count (the reference keeps the last one; COCO has at most one).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from babelseg.evaluation.coco_io import (
    VOID,
    categories_isthing,
    read_panoptic_image,
    read_panoptic_json,
)
from babelseg.evaluation.report import format_table, summarize

OFFSET = 256**3
"""Segment ids are below ``OFFSET``, so ``gt * OFFSET + pred`` encodes a pair in an int64."""


@dataclass
class PQGroup:
    """Mean PQ, SQ, RQ (percent; NaN when ``n == 0``) over the ``n`` categories of a group
    (all, things or stuff) that have ``TP + FP + FN > 0``."""

    pq: float
    sq: float
    rq: float
    n: int


@dataclass
class ClassPQ:
    """One category's scores (percent) and counts over the evaluation set."""

    pq: float
    sq: float
    rq: float
    tp: int
    fp: int
    fn: int


@dataclass
class PanopticMetrics:
    """Scores of one evaluation set: means over all / thing / stuff categories, per category
    (``None`` for categories left out of the means) and the number of images accumulated."""

    all: PQGroup
    things: PQGroup
    stuff: PQGroup
    per_class: dict[int, ClassPQ | None]
    num_images: int


def _segment_table(
    segments: Sequence[Mapping[str, Any]], *, what: str, known: Mapping[int, bool]
) -> dict[int, tuple[int, bool]]:
    """``{segment id: (category id, iscrowd)}`` with checks; ``what`` names the source."""
    table: dict[int, tuple[int, bool]] = {}
    for s in segments:
        if "id" not in s or "category_id" not in s:
            raise ValueError(f"{what}: segment {dict(s)} lacks 'id' or 'category_id'.")
        sid, cat = int(s["id"]), int(s["category_id"])
        if sid == VOID:
            raise ValueError(f"{what}: segment id 0 is VOID and cannot be a segment; renumber.")
        if sid in table:
            raise ValueError(f"{what}: segment id {sid} is listed twice in segments_info.")
        if cat not in known:
            raise ValueError(
                f"{what}: segment {sid} has category_id {cat}, which is not one of the "
                f"{len(known)} evaluated categories; fix the category or add it."
            )
        table[sid] = (cat, int(s.get("iscrowd", 0)) == 1)
    return table


class PanopticQuality:
    """Accumulates PQ statistics over images (COCO panoptic conventions, see module docstring).

    Args:
        categories: ``{category id: isthing}`` of every category evaluated.

    For a distributed all-reduce, sum :meth:`state` (``float64[C + 1, 4]``) across processes and
    load the sum with :meth:`load_state`, or :meth:`merge` two accumulators in one process.
    """

    def __init__(self, categories: Mapping[int, bool]) -> None:
        if not categories:
            raise ValueError("PanopticQuality needs at least one category {id: isthing}.")
        self.categories: dict[int, bool] = {int(k): bool(v) for k, v in categories.items()}
        self._ids = list(self.categories)
        self._slot = {c: i for i, c in enumerate(self._ids)}
        self.stats = np.zeros((len(self._ids), 4), dtype=np.float64)
        """``float64[C, 4]``: per category (order of ``categories``) TP, FP, FN, IoU sum."""
        self.num_images = 0

    # ----------------------------------------------------------------- accumulation
    def update(
        self,
        *,
        gt_ids: Any,
        gt_segments: Sequence[Mapping[str, Any]],
        pred_ids: Any,
        pred_segments: Sequence[Mapping[str, Any]],
        image: str = "image",
    ) -> None:
        """Add one image.

        Args:
            gt_ids: ``int[H, W]`` ground-truth segment ids, 0 = VOID (numpy or torch).
            gt_segments: ``[{"id", "category_id", "iscrowd"}, ...]`` for every id in ``gt_ids``.
            pred_ids: ``int[H, W]`` predicted segment ids, 0 = unlabelled.
            pred_segments: ``[{"id", "category_id"}, ...]``, exactly the ids in ``pred_ids``.
            image: Name used in error messages (e.g. the image id or file).

        Raises:
            ValueError: shapes differ, maps and lists disagree, or a category is unknown.
        """
        gt = _as_ids(gt_ids)
        pred = _as_ids(pred_ids)
        if gt.shape != pred.shape or gt.ndim != 2:
            raise ValueError(
                f"{image}: ground truth {gt.shape} and prediction {pred.shape} must be [H, W] "
                "maps of the same size; resize the prediction to the ground-truth size."
            )
        gts = _segment_table(gt_segments, what=f"{image} (ground truth)", known=self.categories)
        preds = _segment_table(pred_segments, what=f"{image} (prediction)", known=self.categories)

        joint = gt * OFFSET + pred
        pairs, counts = np.unique(joint, return_counts=True)
        inter: dict[tuple[int, int], int] = {
            (int(k // OFFSET), int(k % OFFSET)): int(n) for k, n in zip(pairs, counts)
        }
        gt_area: Counter[int] = Counter()
        pred_area: Counter[int] = Counter()
        for (g, p), n in inter.items():
            gt_area[g] += n
            pred_area[p] += n
        _check_ids(set(gt_area) - {VOID}, set(gts), what=f"{image} (ground truth)", strict=False)
        _check_ids(set(pred_area) - {VOID}, set(preds), what=f"{image} (prediction)", strict=True)

        # Everything is checked above, so the counts below are added in place.
        gt_matched: set[int] = set()
        pred_matched: set[int] = set()
        for (g, p), n in inter.items():
            if g == VOID or p == VOID:
                continue
            g_cat, g_crowd = gts[g]
            if g_crowd or g_cat != preds[p][0]:
                continue
            union = pred_area[p] + gt_area[g] - n - inter.get((VOID, p), 0)
            value = n / union
            if value > 0.5:
                self.stats[self._slot[g_cat]] += (1, 0, 0, value)
                gt_matched.add(g)
                pred_matched.add(p)

        crowd_of: dict[int, list[int]] = {}
        for g, (cat, crowd) in gts.items():
            if crowd:
                crowd_of.setdefault(cat, []).append(g)
            elif g not in gt_matched:
                self.stats[self._slot[cat], 2] += 1
        for p, (cat, _) in preds.items():
            if p in pred_matched:
                continue
            ignored = inter.get((VOID, p), 0)
            ignored += sum(inter.get((g, p), 0) for g in crowd_of.get(cat, ()))
            if ignored / pred_area[p] > 0.5:
                continue
            self.stats[self._slot[cat], 1] += 1
        self.num_images += 1

    def merge(self, other: PanopticQuality) -> PanopticQuality:
        """Add the counts of ``other`` (same categories) into this one; returns self."""
        if other.categories != self.categories:
            raise ValueError("Cannot merge PanopticQuality accumulators of different categories.")
        self.load_state(self.state() + other.state())
        return self

    def state(self) -> np.ndarray:
        """``float64[C + 1, 4]``: rows per category ``(tp, fp, fn, iou sum)``, then
        ``num_images`` in the last row. Summing states equals merging accumulators."""
        return np.concatenate([self.stats, [[self.num_images, 0, 0, 0]]])

    def load_state(self, state: Any) -> None:
        """Replace the counts with a (summed) :meth:`state` array (numpy or torch)."""
        s = _as_numpy(state).astype(np.float64)
        assert s.shape == (len(self._ids) + 1, 4), s.shape
        self.stats = s[:-1].copy()
        self.num_images = int(round(s[-1, 0]))

    def reset(self) -> None:
        """Forget everything accumulated."""
        self.load_state(np.zeros((len(self._ids) + 1, 4)))

    # ----------------------------------------------------------------- scores
    def compute(self) -> PanopticMetrics:
        """PQ / SQ / RQ of everything accumulated so far (percent)."""
        per_class: dict[int, ClassPQ | None] = {}
        for i, cat in enumerate(self._ids):
            tp, fp, fn = (int(round(v)) for v in self.stats[i, :3])
            iou = float(self.stats[i, 3])
            if tp + fp + fn == 0:
                per_class[cat] = None
                continue
            denom = tp + 0.5 * fp + 0.5 * fn
            per_class[cat] = ClassPQ(
                pq=100.0 * iou / denom,
                sq=100.0 * iou / tp if tp else 0.0,
                rq=100.0 * tp / denom,
                tp=tp,
                fp=fp,
                fn=fn,
            )

        def group(isthing: bool | None) -> PQGroup:
            got = [v for c, v in per_class.items() if v and isthing in (None, self.categories[c])]
            if not got:
                return PQGroup(pq=math.nan, sq=math.nan, rq=math.nan, n=0)
            mean = {k: sum(getattr(v, k) for v in got) / len(got) for k in ("pq", "sq", "rq")}
            return PQGroup(**mean, n=len(got))

        return PanopticMetrics(
            all=group(None),
            things=group(True),
            stuff=group(False),
            per_class=per_class,
            num_images=self.num_images,
        )


def _as_numpy(x: Any) -> np.ndarray:
    """numpy array from numpy or a torch tensor (without importing torch)."""
    return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)


def _as_ids(x: Any) -> np.ndarray:
    a = _as_numpy(x)
    if a.dtype.kind not in "iub":
        raise ValueError(f"Segment id maps must hold integers, got dtype {a.dtype}.")
    a = a.astype(np.int64)
    if a.size and (a.min() < 0 or a.max() >= OFFSET):
        raise ValueError(f"Segment ids must lie in 0..{OFFSET - 1}, got {a.min()}..{a.max()}.")
    return a


def _check_ids(in_map: set[int], listed: set[int], *, what: str, strict: bool) -> None:
    """Every id of the map must be listed; with ``strict``, every listed id must be in the map."""
    parts = []
    if in_map - listed:
        parts.append(f"ids {sorted(in_map - listed)[:5]} are in the PNG but not in segments_info")
    if strict and listed - in_map:
        parts.append(f"ids {sorted(listed - in_map)[:5]} are in segments_info but not in the PNG")
    if parts:
        raise ValueError(
            f"{what}: {'; '.join(parts)}; the PNG and the JSON do not belong together."
        )


# ---------------------------------------------------------------------------- files
def evaluate_panoptic_files(
    *,
    gt_json: str | Path,
    gt_dir: str | Path,
    pred_json: str | Path,
    pred_dir: str | Path,
    categories: Mapping[int, bool] | None = None,
) -> PanopticMetrics:
    """PQ of a COCO panoptic prediction (PNG folder + JSON) against the ground truth.

    Every ground-truth image needs a prediction (matched by ``image_id``); predictions of other
    images are ignored, as the reference does. ``categories`` (``{id: isthing}``) defaults to
    the ground-truth JSON's ``categories``.

    Raises:
        FileNotFoundError: a JSON, folder or PNG is missing.
        ValueError: the ground truth has no categories, an image has no prediction, or a PNG
            and its segments disagree.
    """
    for label, folder in (("ground-truth", gt_dir), ("prediction", pred_dir)):
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"The {label} PNG folder {folder} does not exist.")
    gt = read_panoptic_json(gt_json)
    pred = read_panoptic_json(pred_json)
    if categories is None:
        if not gt.categories:
            raise ValueError(
                f"{gt.path} has no 'categories'; add them (id, isthing) or pass categories."
            )
        categories = categories_isthing(gt.categories)
    missing = [i for i in gt.annotations if i not in pred.annotations]
    if missing:
        raise ValueError(
            f"{pred.path} has no prediction for {len(missing)} ground-truth image(s) of "
            f"{gt.path}, e.g. image_id {missing[:5]}; predict every image."
        )
    pq = PanopticQuality(categories)
    for image_id, gt_ann in gt.annotations.items():
        gt_ids, gt_segments = read_panoptic_image(gt_dir, gt_ann)
        pred_ids, pred_segments = read_panoptic_image(pred_dir, pred.annotations[image_id])
        pq.update(
            gt_ids=gt_ids,
            gt_segments=gt_segments,
            pred_ids=pred_ids,
            pred_segments=pred_segments,
            image=f"image_id {image_id} ({gt_ann['file_name']})",
        )
    return pq.compute()


def panoptic_entry(
    metrics: PanopticMetrics,
    *,
    names: Mapping[int, str] | None = None,
    heldout: bool = False,
) -> dict[str, Any]:
    """The ``metrics.json`` entry of one panoptic dataset (see ``evaluation/report.py``).

    Args:
        metrics: Result of :meth:`PanopticQuality.compute`.
        names: ``{category id: name}`` used as ``per_class`` keys (ids otherwise).
        heldout: Whether the dataset was held out of training.

    Returns:
        ``{"task": "panoptic", "PQ", "SQ", "RQ", "PQ_th", "SQ_th", "RQ_th", "PQ_st", "SQ_st",
        "RQ_st", "per_class": {name: PQ or None}, "num_images", "heldout"}`` (NaN -> None).
    """
    names = names or {}
    entry: dict[str, Any] = {"task": "panoptic"}
    for suffix, g in (("", metrics.all), ("_th", metrics.things), ("_st", metrics.stuff)):
        for key, value in (("PQ", g.pq), ("SQ", g.sq), ("RQ", g.rq)):
            entry[key + suffix] = None if math.isnan(value) else value
    entry["per_class"] = {names.get(c, str(c)): v and v.pq for c, v in metrics.per_class.items()}
    return {**entry, "num_images": metrics.num_images, "heldout": bool(heldout)}


def format_pq_table(metrics: PanopticMetrics) -> str:
    """The reference's summary table: PQ, SQ, RQ and N for All / Things / Stuff."""
    lines = [f"{'':10s}| {'PQ':>5s}  {'SQ':>5s}  {'RQ':>5s} {'N':>5s}", "-" * 38]
    for name, g in (("All", metrics.all), ("Things", metrics.things), ("Stuff", metrics.stuff)):
        lines.append(f"{name:10s}| {g.pq:5.1f}  {g.sq:5.1f}  {g.rq:5.1f} {g.n:5d}")
    return "\n".join(lines)


def score_panoptic_files(
    *, gt_json: str | Path, gt_dir: str | Path, pred_json: str | Path, pred_dir: str | Path
) -> tuple[dict[str, Any], str]:
    """``babelseg score --task panoptic``: the report (``metrics.json`` schema, one dataset
    named after the ground-truth JSON, per-class PQ by category name) and the text to print."""
    metrics = evaluate_panoptic_files(
        gt_json=gt_json, gt_dir=gt_dir, pred_json=pred_json, pred_dir=pred_dir
    )
    cats = read_panoptic_json(gt_json).categories
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in cats}
    report = summarize({Path(gt_json).stem: panoptic_entry(metrics, names=names)})
    return report, format_pq_table(metrics) + "\n\n" + format_table(report, per_class=True)
