"""Run a trained model over declared datasets and score each in its own label space.

What each dataset gets depends on its task and on the recipe:

- semantic datasets: mIoU;
- panoptic datasets: PQ / SQ / RQ (COCO panoptic conventions, :mod:`.panoptic`) plus mIoU from
  the same forward pass, when the recipe predicts segments (``lmseg``, ``dataseg``); mIoU only
  otherwise;
- instance and boxes-only datasets: mask AP (pycocotools, :mod:`.instance`) against the
  split's masks (hidden masks of boxes-only data, e.g. SynthWorld ``open_boxes`` val), when the
  recipe predicts segments; skipped (with the reason) otherwise.

Datasets the checkpoint was trained on are predicted with ``dataset=name`` (recipes with
per-dataset classifiers use it); held-out ones with ``dataset=None``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils

from babelseg.data.declaration import DatasetDecl
from babelseg.data.label_source import resolve_label_space
from babelseg.data.readers import make_reader
from babelseg.data.readers.base import DatasetReader
from babelseg.data.readers.coco_instances import CocoInstancesReader
from babelseg.data.sample import Annotation, Sample, Task
from babelseg.engine.progress import Progress, progress_style
from babelseg.evaluation.instance import instance_ap, instance_entry, masks_to_coco_results
from babelseg.evaluation.panoptic import PanopticQuality, panoptic_entry
from babelseg.evaluation.report import semantic_entry, summarize
from babelseg.evaluation.semantic import SemanticConfusion
from babelseg.inference.api import predict_tasks
from babelseg.inference.predictor import Predictor
from babelseg.inference.windows import InferenceOptions
from babelseg.labels.space import LabelSpace
from babelseg.models.segments import PanopticPrediction


def panoptic_ground_truth(sample: Sample) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """A panoptic sample as an id map and COCO ``segments_info`` (category = class index).

    Returns:
        ``(ids int64[H, W], segments)``: segment ``i`` of the sample has id ``i + 1``; pixels
        of no segment (unlabelled, or of classes outside the label space) are 0 = VOID.
    """
    if sample.masks is None or sample.classes is None:
        raise ValueError(f"{sample.path}: a panoptic sample needs masks and classes.")
    ids = np.zeros(sample.masks.shape[1:], dtype=np.int64)
    segments = []
    crowd = sample.iscrowd if sample.iscrowd is not None else np.zeros(len(sample.classes), bool)
    for i, (mask, cls) in enumerate(zip(sample.masks, sample.classes)):
        ids[mask] = i + 1
        segments.append({"id": i + 1, "category_id": int(cls), "iscrowd": int(crowd[i])})
    return ids, segments


def prediction_segments(pred: PanopticPrediction) -> list[dict[str, Any]]:
    """``segments_info`` records (category = class index) of a panoptic prediction."""
    return [{"id": int(s.id), "category_id": int(s.category)} for s in pred.segments]


def coco_instance_annotations(sample: Sample, image_id: int) -> list[dict[str, Any]]:
    """The COCO instance annotations of one sample with masks: class ``k`` has category id
    ``k + 1``, masks as compressed RLE (pycocotools fills in ``area``)."""
    if sample.masks is None or sample.classes is None or len(sample.classes) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(sample.masks.transpose(1, 2, 0).astype(np.uint8)))
    crowd = sample.iscrowd if sample.iscrowd is not None else np.zeros(len(sample.classes), bool)
    return [
        {
            "image_id": image_id,
            "category_id": int(cls) + 1,
            "segmentation": {
                "size": [int(v) for v in rle["size"]],
                "counts": rle["counts"].decode(),
            },
            "iscrowd": int(c),
        }
        for rle, cls, c in zip(rles, sample.classes, crowd)
    ]


def _dataset_texts(predictor: Predictor, name: str, space: LabelSpace):
    if name in predictor.texts and len(predictor.texts[name]) == len(space):
        return predictor.texts[name]
    return predictor.vocabulary(space)


def _instance_entry(
    predictor: Predictor,
    reader: DatasetReader,
    indices: Iterable[int],
    space: LabelSpace,
    text: torch.Tensor,
    *,
    name: str,
    split: str,
    heldout: bool,
) -> dict[str, Any]:
    """Mask AP of a boxes-only / instance dataset (or why it was skipped)."""
    if isinstance(reader, CocoInstancesReader) and not reader.with_masks:
        return {
            "task": "instance",
            "heldout": heldout,
            "skipped": f"split '{split}' has no masks to score mask AP against",
        }
    dataset = predictor.known_dataset(name)
    images, annotations, detections = [], [], []
    category_ids = list(range(1, len(space) + 1))
    for i in indices:
        sample = reader[i]
        pred = predictor.predict_instances(sample.image, text, dataset=dataset)
        images.append({"id": i + 1, "height": sample.height, "width": sample.width})
        annotations += coco_instance_annotations(sample, i + 1)
        detections += masks_to_coco_results(
            masks=pred.masks,
            classes=pred.classes,
            scores=pred.scores,
            image_id=i + 1,
            category_ids=category_ids,
        )
    categories = [{"id": k + 1, "name": c} for k, c in enumerate(space.names)]
    gt = {"images": images, "annotations": annotations, "categories": categories}
    ap = instance_ap(gt, detections, where=f"dataset '{name}' ({split})")
    names_by_id = {k + 1: c for k, c in enumerate(space.names)}
    return instance_entry(ap, names=names_by_id, heldout=heldout)


def _semantic_entry(
    predictor: Predictor,
    reader: DatasetReader,
    indices: Iterable[int],
    space: LabelSpace,
    text: torch.Tensor,
    *,
    name: str,
    panoptic: bool,
    heldout: bool,
    options: InferenceOptions,
) -> dict[str, Any]:
    """mIoU of a semantic dataset; PQ (and mIoU) of a panoptic one."""
    dataset = predictor.known_dataset(name)
    confusion = SemanticConfusion(num_classes=len(space), names=space.names)
    pq = PanopticQuality({k: bool(t) for k, t in enumerate(space.thing_mask)})
    for i in indices:
        sample = reader[i]
        assert sample.semantic is not None
        if panoptic:
            got = predictor.predict_tasks(
                sample.image,
                text,
                tasks=("semantic", "panoptic"),
                is_thing=space.thing_mask,
                dataset=dataset,
            )
            gt_ids, gt_segments = panoptic_ground_truth(sample)
            assert got.panoptic is not None
            pq.update(
                gt_ids=gt_ids,
                gt_segments=gt_segments,
                pred_ids=got.panoptic.segment_ids,
                pred_segments=prediction_segments(got.panoptic),
                image=f"{name}/{sample.image_id}",
            )
            semantic = got.semantic
        else:
            semantic = predict_tasks(
                predictor, sample.image, text, dataset=dataset, options=options
            ).semantic
        confusion.update(semantic, sample.semantic)
    sem = semantic_entry(confusion.compute(), heldout=heldout)
    if not panoptic:
        return sem
    entry = panoptic_entry(pq.compute(), names=dict(enumerate(space.names)), heldout=heldout)
    entry.update({"mIoU": sem["mIoU"], "per_class_IoU": sem["per_class"], "aAcc": sem["aAcc"]})
    return entry


def evaluate_datasets(
    predictor: Predictor,
    decls: Mapping[str, DatasetDecl],
    names: Sequence[str],
    *,
    split: str = "val",
    max_images: int | None = None,
    show_progress: bool | None = None,
    options: InferenceOptions | None = None,
    log_every: int = 25,
) -> dict[str, Any]:
    """Score every named dataset, held-out ones zero-shot (see the module docstring).

    Progress: a bar on a terminal, else a line every ``log_every`` images (``show_progress``:
    True = bar, False = nothing). ``options`` other than one pass of the whole image (slide,
    resize, flip, scales) score mIoU only: PQ and mask AP need the one-pass segments, so those
    datasets report mIoU or are skipped.

    Each dataset is predicted against the text embeddings of its own label space (stored in the
    checkpoint when the dataset was declared at training time, encoded otherwise).

    Returns:
        The ``metrics.json`` mapping (``babelseg.evaluation.report``): ``{"datasets": {name:
        entry}, "mean_mIoU", "mean_heldout_mIoU", ...}`` plus ``mean_PQ`` / ``mean_AP`` when a
        dataset reports them. Datasets that cannot be scored are listed with ``"skipped"`` and
        the reason.
    """
    style = progress_style(show_progress)
    options = options or InferenceOptions()
    segments = predictor.predicts_segments and options.single_pass
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        if name not in decls:
            raise ValueError(f"Unknown dataset '{name}'; declared: {sorted(decls)}.")
        decl = decls[name]
        instance_like = (
            decl.task == Task.INSTANCE
            or decl.annotation == Annotation.BOXES
            or decl.format == "coco-instances"
        )
        if instance_like and not segments:
            results[name] = {
                "task": decl.task.value,
                "heldout": decl.heldout,
                "skipped": "no semantic ground truth (boxes/instances are scored by mask AP, "
                "which needs a mask-classification recipe: lmseg, dataseg, and --mode whole "
                "without --flip / --scales)",
            }
            continue
        space = resolve_label_space(decl)
        text = _dataset_texts(predictor, name, space)
        reader = make_reader(decl, split, space, with_hidden_masks=instance_like)
        n = len(reader) if max_images is None else min(len(reader), max_images)
        progress = Progress(
            total=n, desc=f"eval {name}", every=log_every, unit="image", style=style, leave=False
        )
        indices = progress.track(range(n))
        common = dict(name=name, heldout=decl.heldout)
        if instance_like:
            results[name] = _instance_entry(
                predictor, reader, indices, space, text, split=split, **common
            )
        else:
            panoptic = decl.task == Task.PANOPTIC and segments
            results[name] = _semantic_entry(
                predictor,
                reader,
                indices,
                space,
                text,
                panoptic=panoptic,
                options=options,
                **common,
            )
        progress.close()  # also when a dataset was skipped before its loop
    return summarize(results)
