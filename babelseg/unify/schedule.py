"""AutoUniSeg's training schedule: a warm-up, segmentation and graph phases in turn, then a final
segmentation-only stage under the fixed final mappings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AlternationSchedule:
    """Which phase a step is in and when the mappings change.

    Steps ``[0, warmup_steps)`` are the warm-up; then segmentation and graph phases of
    ``alternate_every`` steps alternate until ``final_start``; steps ``[final_start,
    total_steps)`` are the final stage (the mappings are fixed and pruned before its first step;
    the graph is frozen). ``final_steps = 0``: no final stage, the mappings are fixed and pruned
    after the last step.

    Attributes:
        warmup_steps: Steps of per-dataset classifiers (clamped below ``total_steps``).
        alternate_every: Steps per segmentation / graph phase.
        remap_every: Steps between recomputations of the boolean mappings.
        total_steps: The run's steps.
        final_steps: Steps of the final segmentation-only stage (it never starts before the
            warm-up ends: a run shorter than ``warmup_steps + final_steps`` has no alternation).
    """

    warmup_steps: int
    alternate_every: int
    remap_every: int
    total_steps: int
    final_steps: int = 0

    def __post_init__(self) -> None:
        if self.final_steps < 0:
            raise ValueError(
                f"recipe.autounify.final_steps must be >= 0 (0: no final stage), got "
                f"{self.final_steps}."
            )

    @property
    def final_start(self) -> int:
        """The first step of the final stage (``total_steps`` when there is none)."""
        if self.final_steps == 0:
            return self.total_steps
        return max(self.warmup_steps, self.total_steps - self.final_steps)

    def phase(self, step: int, *, initialised: bool) -> str:
        """``warmup``, ``segmentation``, ``graph`` or ``final``."""
        if step < self.warmup_steps or not initialised:
            return "warmup"
        if step >= self.final_start:
            return "final"
        odd = ((step - self.warmup_steps) // self.alternate_every) % 2
        return "graph" if odd else "segmentation"

    def remaps_before(self, step: int) -> bool:
        """Whether the boolean mappings are recomputed before ``step`` (never in the final
        stage: its mappings are fixed when it starts)."""
        since = step - self.warmup_steps
        return since >= 0 and since % self.remap_every == 0 and step < self.final_start

    def initialises_after(self, step: int) -> bool:
        """Whether the unified classes are derived after ``step`` (the warm-up's last)."""
        return step == self.warmup_steps - 1 or (self.warmup_steps == 0 and step == 0)

    def collecting(self, step: int) -> bool:
        """Associations are gathered over the second half of the warm-up."""
        return self.warmup_steps > 0 and step >= self.warmup_steps // 2
