"""Divergence: which checkpoint is still good when the loss blows up, and what to tell the user.

A checkpoint holds the weights *after* its step; whether those weights are sound shows only at
the next step, whose loss is computed with them. So a checkpoint counts as good once a later
step's loss was finite, and one written just before the loss became NaN or infinite is not. A
checkpoint resumed from is in the same position: unconfirmed until the first resumed step.

With a huge learning rate the loss can stay finite for a few steps after the weights are
already ruined (the model predicts one class everywhere, the loss sits at log K): the blow-up
starts at the first step that multiplied the weights' global norm by more than
``WEIGHT_JUMP``, and no checkpoint written from then on counts as good.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from babelseg.engine.distributed import all_reduce_sum_


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped without saving the bad state."""


WEIGHT_JUMP = 10.0
"""A step that multiplies the weights' global norm by more than this blew them up (an AdamW
step changes each weight by about ``lr``; only an absurd learning rate gets near this)."""


class GoodCheckpoints:
    """Tracks the newest checkpoint known good: written before the weights blew up, and its
    weights gave a finite loss at the next step.

    Args:
        resumed_from: The checkpoint a resumed run starts from (unconfirmed), or None.
    """

    def __init__(self, *, resumed_from: Path | None = None) -> None:
        self.last_good: Path | None = None
        self.unconfirmed: Path | None = resumed_from
        self._eligible = resumed_from is not None
        self._blown: torch.Tensor | bool = False

    def step_taken(self, norm_before: torch.Tensor, norm_after: torch.Tensor) -> None:
        """Record an optimizer step by the weights' global norm before and after it (tensors:
        no device sync until the next save)."""
        self._blown = self._blown | (norm_after > WEIGHT_JUMP * norm_before)

    def saved(self, path: Path | None) -> None:
        """A checkpoint was written after the current step (confirmed by the next one)."""
        if path is not None:
            self.unconfirmed = path
            self._eligible = not bool(self._blown)

    def check_loss(
        self,
        total: torch.Tensor,
        per_dataset: dict[str, torch.Tensor],
        *,
        step: int,
        world_size: int,
    ) -> None:
        """Stop at a non-finite loss on any process (every rank must agree, or the healthy ones
        would wait forever in the next all-reduce); a finite one confirms the newest checkpoint.

        Raises:
            TrainingDiverged: with :meth:`message` (``step`` is 1-based).
        """
        finite = torch.isfinite(total.detach()).float()
        all_reduce_sum_(finite)
        if float(finite) < world_size:
            bad = [n for n, v in per_dataset.items() if not torch.isfinite(v)]
            loss = float(total.detach())
            raise TrainingDiverged(
                self.message(loss=loss, step=step, datasets=bad or sorted(per_dataset))
            )
        self.loss_was_finite()

    def loss_was_finite(self) -> None:
        """The current step's loss, computed with the newest checkpoint's weights, is finite."""
        if self.unconfirmed is not None and self._eligible:
            self.last_good = self.unconfirmed
        self.unconfirmed = None

    def message(self, *, loss: float, step: int, datasets: list[str]) -> str:
        """The one-paragraph report of a divergence at ``step`` (1-based)."""
        head = (
            f"Loss became {loss} at step {step} (dataset(s) {datasets}); training stopped and "
            "nothing was saved for this step."
        )
        if bool(self._blown):
            head += f" Before that, one step multiplied the weights by more than {WEIGHT_JUMP:g}."
        fix = "Lower train.lr (or raise train.warmup_steps / set train.grad_clip), or check those "
        fix += "datasets with `babelseg datasets check`."
        if self.last_good is None:
            return (
                f"{head} No checkpoint is known good (none was written before the blow-up). {fix}"
            )
        return (
            f"{head} The last good checkpoint is {self.last_good}; later ones were written after "
            f"the blow-up (delete them to resume from it). {fix}"
        )


def weight_norm(parameters: Iterable[torch.Tensor]) -> torch.Tensor:
    """The global L2 norm of the parameters (0-d tensor on their device; no sync)."""
    tensors = [p.detach() for p in parameters]
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tensors)))


def all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    """Whether every value of every tensor is finite (one device sync)."""
    flags = [torch.isfinite(t.detach()).all() for t in tensors if t.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True
