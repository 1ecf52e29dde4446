"""Divergence: which checkpoint is still good when the loss blows up, and what to tell the user.

A checkpoint holds the weights *after* its step; whether those weights are sound shows only at
the next step, whose loss is computed with them. So a checkpoint counts as good once a later
step's loss was finite, and one written just before the loss became NaN or infinite is not
(with a huge learning rate it already predicts one class everywhere). A checkpoint resumed from
is in the same position: unconfirmed until the first resumed step.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped without saving the bad state."""


class GoodCheckpoints:
    """Tracks the newest checkpoint whose weights gave a finite loss.

    Args:
        resumed_from: The checkpoint a resumed run starts from (unconfirmed), or None.
    """

    def __init__(self, *, resumed_from: Path | None = None) -> None:
        self.last_good: Path | None = None
        self.unconfirmed: Path | None = resumed_from

    def saved(self, path: Path | None) -> None:
        """A checkpoint was written after the current step (confirmed by the next one)."""
        if path is not None:
            self.unconfirmed = path

    def loss_was_finite(self) -> None:
        """The current step's loss, computed with the newest checkpoint's weights, is finite."""
        if self.unconfirmed is not None:
            self.last_good, self.unconfirmed = self.unconfirmed, None

    def message(self, *, loss: float, step: int, datasets: list[str]) -> str:
        """The one-paragraph report of a divergence at ``step`` (1-based)."""
        head = (
            f"Loss became {loss} at step {step} (dataset(s) {datasets}); training stopped and "
            "nothing was saved for this step."
        )
        fix = "Lower train.lr (or raise train.warmup_steps / set train.grad_clip), or check those "
        fix += "datasets with `babelseg datasets check`."
        if self.last_good is None:
            return f"{head} No checkpoint is known good (none gave a finite loss after it). {fix}"
        later = f" ({self.unconfirmed} was written just before the blow-up: delete it to resume)"
        return (
            f"{head} The last good checkpoint is {self.last_good}"
            f"{later if self.unconfirmed is not None else ''}. {fix}"
        )


def all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    """Whether every value of every tensor is finite (one device sync)."""
    flags = [torch.isfinite(t.detach()).all() for t in tensors if t.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True
