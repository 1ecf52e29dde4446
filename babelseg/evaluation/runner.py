"""Run a trained model over declared datasets and score each in its own label space."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from tqdm import tqdm

from babelseg.data.declaration import DatasetDecl, resolve_label_space
from babelseg.data.readers import make_reader
from babelseg.data.sample import Annotation
from babelseg.evaluation.report import semantic_entry, summarize
from babelseg.evaluation.semantic import SemanticConfusion
from babelseg.inference.predictor import Predictor


def evaluate_datasets(
    predictor: Predictor,
    decls: Mapping[str, DatasetDecl],
    names: Sequence[str],
    *,
    split: str = "val",
    max_images: int | None = None,
    show_progress: bool | None = None,
) -> dict[str, Any]:
    """Semantic mIoU of every named dataset, held-out ones zero-shot.

    Each dataset is predicted against the text embeddings of its own label space (stored in the
    checkpoint when the dataset was declared at training time, encoded otherwise) and scored with
    ignore 255 and empty-union classes left out.

    Returns:
        The ``metrics.json`` mapping: ``{"datasets": {name: {...}}, "mean_mIoU": x,
        "mean_heldout_mIoU": y}``. Datasets without semantic ground truth (boxes-only,
        instance-only) are listed with ``"skipped"`` and the reason.
    """
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        if name not in decls:
            raise ValueError(f"Unknown dataset '{name}'; declared: {sorted(decls)}.")
        decl = decls[name]
        if decl.annotation == Annotation.BOXES or decl.format == "coco-instances":
            results[name] = {
                "task": decl.task.value,
                "heldout": decl.heldout,
                "skipped": "no semantic ground truth (boxes/instances are scored by AP, "
                "which the mask-classification recipes bring)",
            }
            continue
        space = resolve_label_space(decl)
        if name in predictor.texts and len(predictor.texts[name]) == len(space):
            text = predictor.texts[name]
        else:
            text = predictor.vocabulary(space)
        reader = make_reader(decl, split, space)
        n = len(reader) if max_images is None else min(len(reader), max_images)
        confusion = SemanticConfusion(num_classes=len(space), names=space.names)
        for i in tqdm(range(n), desc=f"eval {name}", disable=not show_progress, leave=False):
            sample = reader[i]
            assert sample.semantic is not None
            confusion.update(predictor.predict(sample.image, text), sample.semantic)
        results[name] = semantic_entry(confusion.compute(), heldout=decl.heldout)
    return summarize(results)
