"""Per-dataset metrics reports: the ``metrics.json`` schema, a text table, an atomic writer.

Schema (one entry per dataset, keyed by name; each entry names its task and carries that task's
headline metric, see ``HEADLINES``)::

    {
      "datasets": {
        "street_a": {"task": "semantic", "mIoU": 41.2, "per_class": {"road": 88.1, "sky": null},
                     "num_images": 50, "heldout": false},
        ...
      },
      "mean_mIoU": 41.2,            # mean over datasets that are not held out (null when none)
      "mean_heldout_mIoU": null     # mean over held-out datasets (null when none)
    }

A panoptic entry (``"task": "panoptic"``, ``"PQ": ...``) or an instance entry (``"task":
"instance"``, ``"AP": ...``) fits the same scheme: :func:`summarize` adds ``mean_<metric>`` and
``mean_heldout_<metric>`` for every headline metric that any entry carries, so an entry may carry
more than one (a panoptic dataset may report mIoU too).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from babelseg.evaluation.semantic import SemanticMetrics

HEADLINES: dict[str, str] = {"semantic": "mIoU", "panoptic": "PQ", "instance": "AP"}
"""Task -> key of its headline metric in a dataset entry."""

PER_CLASS_METRIC: dict[str, str] = {"semantic": "IoU", "panoptic": "PQ", "instance": "AP"}
"""Task -> what the values of an entry's ``"per_class"`` mapping are (table header)."""

METRIC_ORDER: tuple[str, ...] = ("mIoU", "PQ", "AP")
"""Order in which headline metrics appear in tables and mean rows."""


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy scalars -> Python numbers, tuples -> lists."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()  # numpy / torch scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def semantic_entry(metrics: SemanticMetrics, *, heldout: bool = False) -> dict[str, Any]:
    """The ``metrics.json`` entry of one semantic dataset.

    Args:
        metrics: Result of ``SemanticConfusion.compute()``.
        heldout: Whether the dataset was held out of training (zero-shot).

    Returns:
        ``{"task": "semantic", "mIoU", "per_class", "num_images", "heldout", "aAcc", "mAcc"}``
        with ``None`` where a value is undefined (NaN).
    """
    return _clean(
        {
            "task": "semantic",
            "mIoU": metrics.miou,
            "per_class": metrics.per_class_iou,
            "num_images": metrics.num_images,
            "heldout": bool(heldout),
            "aAcc": metrics.pixel_accuracy,
            "mAcc": metrics.mean_accuracy,
        }
    )


def summarize(datasets: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Assemble the full report from per-dataset entries and add the mean rows.

    Args:
        datasets: ``{dataset name: entry}``; each entry has ``"task"``, ``"heldout"`` and the
            headline metric(s) of its task (see ``HEADLINES``).

    Returns:
        ``{"datasets": {...}, "mean_<metric>": ..., "mean_heldout_<metric>": ...}`` for each
        headline metric some entry carries; means skip entries whose value is ``None``.
    """
    report: dict[str, Any] = {"datasets": {name: dict(e) for name, e in datasets.items()}}
    for entry_name, entry in datasets.items():
        task = entry.get("task")
        if task not in HEADLINES:
            raise ValueError(
                f"Dataset '{entry_name}' has task {task!r}; expected one of {sorted(HEADLINES)}."
            )
    for metric in METRIC_ORDER:
        entries = [e for e in datasets.values() if metric in e]
        if not entries:
            continue
        seen = [float(e[metric]) for e in entries if not e.get("heldout") and e[metric] is not None]
        held = [float(e[metric]) for e in entries if e.get("heldout") and e[metric] is not None]
        report[f"mean_{metric}"] = _mean(seen)
        report[f"mean_heldout_{metric}"] = _mean(held)
    return _clean(report)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _render(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        parts = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return [line(header), rule, *[line(r) for r in rows]]


def format_table(metrics: Mapping[str, Any], *, per_class: bool = False) -> str:
    """An aligned text table of a report made by :func:`summarize`.

    One row per dataset and headline metric (dataset, task, metric, value, #images, heldout),
    then the mean rows. With ``per_class``, a per-class IoU table follows for each dataset that
    has ``"per_class"``.

    Args:
        metrics: The report dict (the ``metrics.json`` content).
        per_class: Also list the per-class values.

    Returns:
        The table as one string (no trailing newline).
    """
    header = ["dataset", "task", "metric", "value", "#images", "heldout"]
    rows: list[list[str]] = []
    datasets: Mapping[str, Mapping[str, Any]] = metrics.get("datasets", {})
    for name, entry in datasets.items():
        shown = [m for m in METRIC_ORDER if m in entry] or [HEADLINES.get(entry.get("task"), "?")]
        for metric in shown:
            rows.append(
                [
                    name,
                    str(entry.get("task", "?")),
                    metric,
                    _fmt(entry.get(metric)),
                    _fmt(entry.get("num_images")),
                    "yes" if entry.get("heldout") else "no",
                ]
            )
    for metric in METRIC_ORDER:
        if f"mean_{metric}" not in metrics:
            continue
        rows.append(["mean", "", metric, _fmt(metrics[f"mean_{metric}"]), "", "no"])
        if metrics.get(f"mean_heldout_{metric}") is not None:
            rows.append(["mean", "", metric, _fmt(metrics[f"mean_heldout_{metric}"]), "", "yes"])
    lines = _render(header, rows, right={3, 4})
    if per_class:
        for name, entry in datasets.items():
            classes = entry.get("per_class")
            if not classes:
                continue
            head = PER_CLASS_METRIC.get(entry.get("task"), "value")
            lines += ["", f"{name}:"]
            body = [[str(c), _fmt(v)] for c, v in classes.items()]
            lines += ["  " + s for s in _render(["class", head], body, right={1})]
    return "\n".join(lines)


def write_metrics_json(path: str | Path, metrics: Mapping[str, Any]) -> Path:
    """Write a report as JSON atomically (temporary file in the same folder, then rename).

    NaN and infinities become ``null``; missing parent folders are created.

    Args:
        path: Destination file.
        metrics: The report (see the module docstring).

    Returns:
        The path written.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_clean(metrics), indent=2, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest
