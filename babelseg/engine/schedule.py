"""Learning-rate schedule: linear warm-up, then polynomial ("poly") decay.

The factor multiplies each parameter group's base learning rate, so per-group multipliers (e.g. a
smaller backbone learning rate) are kept::

    factor(step) = warmup_start + (1 - warmup_start) * step / warmup_steps     step < warmup_steps
    factor(step) = min_factor + (1 - min_factor) * (1 - progress) ** power     otherwise
    progress     = (step - warmup_steps) / (total_steps - warmup_steps), clipped to [0, 1]

``step`` counts optimizer steps already taken: the learning rate of the first update is
``base_lr * factor(0)``, and ``factor(total_steps) == min_factor``. Past ``total_steps`` the
factor stays at ``min_factor``.
"""

from __future__ import annotations

import functools

import torch
from torch.optim.lr_scheduler import LambdaLR


def _check_arguments(
    *, total_steps: int, warmup_steps: int, power: float, warmup_start: float, min_factor: float
) -> None:
    if total_steps < 1:
        raise ValueError(f"total_steps must be at least 1, got {total_steps}.")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}.")
    if power <= 0:
        raise ValueError(f"power must be positive, got {power}.")
    if not 0.0 <= warmup_start <= 1.0:
        raise ValueError(f"warmup_start must be in [0, 1], got {warmup_start}.")
    if not 0.0 <= min_factor <= 1.0:
        raise ValueError(f"min_factor must be in [0, 1], got {min_factor}.")


def poly_lr_factor(
    step: int,
    *,
    total_steps: int,
    warmup_steps: int,
    power: float = 0.9,
    warmup_start: float = 0.1,
    min_factor: float = 0.0,
) -> float:
    """Learning-rate factor after ``step`` optimizer steps.

    Args:
        step: Optimizer steps taken so far (>= 0). Steps past ``total_steps`` give ``min_factor``.
        total_steps: Length of the run in optimizer steps.
        warmup_steps: Steps of linear warm-up (0 for none). A warm-up as long as the run or
            longer (e.g. a short smoke run with the default warm-up) ramps for the whole run.
        power: Exponent of the polynomial decay (0.9 is the usual segmentation choice).
        warmup_start: Factor at step 0, rising linearly to 1 at ``warmup_steps``.
        min_factor: Factor the decay ends at (the curve is rescaled to reach it, not clipped).

    Returns:
        The factor, in ``[min(warmup_start, min_factor), 1]``.

    Raises:
        ValueError: negative step or inconsistent arguments.
    """
    _check_arguments(
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        power=power,
        warmup_start=warmup_start,
        min_factor=min_factor,
    )
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}.")
    if step >= total_steps:
        return min_factor
    if step < warmup_steps:
        return warmup_start + (1.0 - warmup_start) * step / warmup_steps
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_factor + (1.0 - min_factor) * (1.0 - progress) ** power


def build_poly_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    total_steps: int,
    warmup_steps: int,
    power: float = 0.9,
    warmup_start: float = 0.1,
    min_factor: float = 0.0,
) -> LambdaLR:
    """A ``LambdaLR`` following :func:`poly_lr_factor`; call ``scheduler.step()`` after each
    ``optimizer.step()``.

    Creating it sets every group's learning rate to ``base_lr * factor(0)``. Its
    ``state_dict()`` is plain JSON-safe data (stored by the checkpoint module); the schedule's
    arguments are not part of it, so rebuild the scheduler with the same arguments before
    ``load_state_dict``.

    Args:
        optimizer: The optimizer whose groups' ``lr`` (the base learning rates) are scaled.
        total_steps: See :func:`poly_lr_factor` (as are the other arguments).
        warmup_steps: Steps of linear warm-up.
        power: Exponent of the decay.
        warmup_start: Factor at step 0.
        min_factor: Factor at the end of the run.

    Raises:
        ValueError: inconsistent arguments (checked here, not at the first step).
    """
    _check_arguments(
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        power=power,
        warmup_start=warmup_start,
        min_factor=min_factor,
    )
    factor = functools.partial(
        poly_lr_factor,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        power=power,
        warmup_start=warmup_start,
        min_factor=min_factor,
    )
    return LambdaLR(optimizer, lr_lambda=factor)
