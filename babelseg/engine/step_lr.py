"""Per-step learning-rate factors on top of the schedule (DaTaSeg App. F: each dataset's
learning rate multiplied by its own factor, with one dataset per step).

The schedule (``engine.schedule``) owns every group's ``lr``; a step's factor scales them for
that one ``optimizer.step()`` and the scheduled values are put back right after, so the
optimizer and scheduler states saved in checkpoints never contain a factor and a resumed run
continues exactly.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def scaled_learning_rates(optimizer: torch.optim.Optimizer, factor: float) -> Iterator[None]:
    """Inside the block every parameter group's ``lr`` is multiplied by ``factor``; on leaving
    (also on an error) each gets back its exact previous value.

    Args:
        optimizer: The optimizer whose groups' learning rates are scaled.
        factor: Positive finite multiplier (1 leaves everything untouched).

    Raises:
        ValueError: ``factor`` is not a positive finite number.
    """
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"A learning-rate multiplier must be positive and finite, got {factor}.")
    if factor == 1.0:
        yield
        return
    scheduled = [group["lr"] for group in optimizer.param_groups]
    for group, lr in zip(optimizer.param_groups, scheduled):
        group["lr"] = lr * factor
    try:
        yield
    finally:
        for group, lr in zip(optimizer.param_groups, scheduled):
            group["lr"] = lr
