"""AutoUniSeg's training schedule: a warm-up, then segmentation and graph phases in turn."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AlternationSchedule:
    """Which phase a step is in and when the mappings change.

    Attributes:
        warmup_steps: Steps of per-dataset classifiers (clamped below ``total_steps``).
        alternate_every: Steps per segmentation / graph phase.
        remap_every: Steps between recomputations of the boolean mappings.
        total_steps: The run's steps (pruning after the last).
    """

    warmup_steps: int
    alternate_every: int
    remap_every: int
    total_steps: int

    def phase(self, step: int, *, initialised: bool) -> str:
        """``warmup``, ``segmentation`` or ``graph``."""
        if step < self.warmup_steps or not initialised:
            return "warmup"
        odd = ((step - self.warmup_steps) // self.alternate_every) % 2
        return "graph" if odd else "segmentation"

    def remaps_before(self, step: int) -> bool:
        """Whether the boolean mappings are recomputed before ``step``."""
        since = step - self.warmup_steps
        return since >= 0 and since % self.remap_every == 0

    def initialises_after(self, step: int) -> bool:
        """Whether the unified classes are derived after ``step`` (the warm-up's last)."""
        return step == self.warmup_steps - 1 or (self.warmup_steps == 0 and step == 0)

    def collecting(self, step: int) -> bool:
        """Associations are gathered over the second half of the warm-up."""
        return self.warmup_steps > 0 and step >= self.warmup_steps // 2
