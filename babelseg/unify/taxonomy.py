"""The learned taxonomy: readable unified classes, YAML export, and scoring against SynthWorld's
ground-truth relations.

Scoring: two labels of *different* training datasets are related when they share a world class
(``relations.json``: dataset -> label -> world classes it covers). The learned taxonomy relates
them when one unified class maps to both. Precision, recall and F1 compare the two pair sets; the
number of unified classes is compared with the number of world classes the training datasets
label.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from babelseg.unify.transport import NO_LABEL

LabelRef = tuple[str, str]
"""(dataset, label name)."""


@dataclass
class UnifiedClass:
    """One learned unified class.

    Attributes:
        name: A readable name taken from its dataset labels.
        labels: ``{dataset: label name or None}`` (None: unlabelled in that dataset).
    """

    name: str
    labels: dict[str, str | None]


def _readable_name(labels: dict[str, str | None], children: Counter) -> str:
    """The most common name among the finest labels (fewest unified children) of a class."""
    named = [(d, n) for d, n in labels.items() if n is not None]
    if not named:
        return "unlabelled"
    finest = min(children[(d, n)] for d, n in named)
    names = [n for d, n in named if children[(d, n)] == finest]
    return Counter(names).most_common(1)[0][0]


def unified_classes(
    assign: dict[str, list[int]],
    label_names: dict[str, list[str]],
    class_of_slot: list[int] | None = None,
) -> list[UnifiedClass]:
    """Unified classes from per-node mappings.

    Args:
        assign: ``{dataset: [label index or -1 per node]}`` (nodes in the same order everywhere).
        label_names: ``{dataset: [label names]}``.
        class_of_slot: Class index of each node (nodes with one index merge; -1 = dropped);
            None = one class per node.
    Returns:
        The classes in index order, with unique names (" (2)" appended to repeats).
    """
    datasets = list(assign)
    num = len(next(iter(assign.values()))) if assign else 0
    cls = list(range(num)) if class_of_slot is None else list(class_of_slot)
    first: dict[int, int] = {}
    for r, c in enumerate(cls):
        if c >= 0:
            first.setdefault(c, r)
    children: Counter = Counter()
    for r in first.values():
        for d in datasets:
            if assign[d][r] != NO_LABEL:
                children[(d, label_names[d][assign[d][r]])] += 1
    out, used = [], Counter()
    for c in sorted(first):
        r = first[c]
        labels = {
            d: (label_names[d][assign[d][r]] if assign[d][r] != NO_LABEL else None)
            for d in datasets
        }
        name = _readable_name(labels, children)
        used[name] += 1
        if used[name] > 1:
            name = f"{name} ({used[name]})"
        out.append(UnifiedClass(name=name, labels=labels))
    return out


def taxonomy_yaml(classes: list[UnifiedClass]) -> str:
    """The taxonomy as YAML: ``unified_classes: [{name, labels: {dataset: label|null}}]``."""
    data = {
        "num_unified": len(classes),
        "unified_classes": [{"name": c.name, "labels": dict(c.labels)} for c in classes],
    }
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def load_relations(path: str | Path) -> dict[str, Any]:
    """Read SynthWorld's ``relations.json`` (``{"world_classes": [...], "datasets": {...}}``)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"Relations file not found: {p}. `babelseg synth --out DIR` writes DIR/relations.json."
        )
    data = json.loads(p.read_text())
    if "datasets" not in data:
        raise ValueError(f"{p} has no 'datasets' key; is it a SynthWorld relations.json?")
    return data


def _ordered(a: LabelRef, b: LabelRef) -> tuple[LabelRef, LabelRef]:
    return (a, b) if a <= b else (b, a)


def label_world_classes(relations: dict[str, Any], datasets: list[str]) -> dict[LabelRef, set[str]]:
    """``{(dataset, label): world classes the label covers}`` for the given datasets."""
    missing = [d for d in datasets if d not in relations["datasets"]]
    if missing:
        raise ValueError(
            f"Datasets {missing} are not in the relations file (it has "
            f"{sorted(relations['datasets'])})."
        )
    return {
        (d, lab): set(worlds)
        for d in datasets
        for lab, worlds in relations["datasets"][d]["labels"].items()
    }


def true_pairs(relations: dict[str, Any], datasets: list[str]) -> set[tuple[LabelRef, LabelRef]]:
    """Label pairs of different datasets that share a world class."""
    covers = label_world_classes(relations, datasets)
    pairs = set()
    for a, wa in covers.items():
        for b, wb in covers.items():
            if a[0] != b[0] and wa & wb:
                pairs.add(_ordered(a, b))
    return pairs


def predicted_pairs(classes: list[UnifiedClass]) -> set[tuple[LabelRef, LabelRef]]:
    """Label pairs of different datasets that one unified class maps to."""
    pairs = set()
    for c in classes:
        refs = [(d, n) for d, n in c.labels.items() if n is not None]
        for i, a in enumerate(refs):
            for b in refs[i + 1 :]:
                pairs.add(_ordered(a, b))
    return pairs


def world_classes_in_training(relations: dict[str, Any], datasets: list[str]) -> int:
    """How many world classes the training datasets label (by any label)."""
    return len(
        {
            w
            for d in datasets
            for worlds in relations["datasets"][d]["labels"].values()
            for w in worlds
        }
    )


def score_taxonomy(
    classes: list[UnifiedClass], relations: dict[str, Any], datasets: list[str]
) -> dict[str, float | int]:
    """Precision, recall, F1 of the label pairs and the class counts.

    Returns:
        ``{"precision", "recall", "f1", "true_pairs", "predicted_pairs", "correct_pairs",
        "num_unified", "num_world"}``.
    """
    truth = true_pairs(relations, datasets)
    pred = predicted_pairs(classes)
    correct = len(truth & pred)
    precision = correct / len(pred) if pred else 0.0
    recall = correct / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "true_pairs": len(truth),
        "predicted_pairs": len(pred),
        "correct_pairs": correct,
        "num_unified": len(classes),
        "num_world": world_classes_in_training(relations, datasets),
    }
