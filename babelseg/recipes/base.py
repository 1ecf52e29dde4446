"""What every recipe provides to the trainer, the evaluator and the predictor."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from babelseg.data.sample import Annotation


@dataclass
class LossResult:
    """A training loss and what to log about it.

    Attributes:
        total: 0-d loss to back-propagate.
        per_dataset: ``{dataset: 0-d loss}`` (detached), to name the culprit of a NaN.
        logs: Extra scalars for the run log.
    """

    total: torch.Tensor
    per_dataset: dict[str, torch.Tensor] = field(default_factory=dict)
    logs: dict[str, float] = field(default_factory=dict)


def group_by_dataset(datasets: list[str]) -> dict[str, list[int]]:
    """``["a", "b", "a"] -> {"a": [0, 2], "b": [1]}`` (first-seen order)."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(datasets):
        groups.setdefault(name, []).append(i)
    return groups


def check_annotations(
    recipe: str, supported: set[Annotation], wanted: Mapping[str, Annotation]
) -> None:
    """Raise ValueError when a dataset's annotation kind is not trainable by ``recipe``."""
    bad = {n: a.value for n, a in wanted.items() if a not in supported}
    if bad:
        raise ValueError(
            f"Recipe '{recipe}' cannot train on {bad}: it supports annotation kinds "
            f"{sorted(a.value for a in supported)}. Remove those datasets from data.train."
        )
