"""Step budgets per paper and device, and what a run costs (for ordering and the estimate).

CPU budgets keep a paper's whole table (every configuration, 3 seeds, one run at a time) under
90 minutes on 2 CPU cores; the step times come from the README's and ``../shared/perf``'s
measurements (sentence ~0.25 s per step on 2 cores, lmseg ~0.6 s; on the H200 ~29 and ~4 steps
per second, host-bound, so parallel jobs help). CUDA budgets are chosen so that the ``sentence``
and ``lmseg`` tables together (36 runs: 3 seeds) fit in about 7 minutes with ``--jobs 10`` on one
H200 and 16 cores: 1.67x (sentence) and 1.17x (lmseg) the CPU steps, not the 10x the issue
suggests, which would take over an hour there. These are estimates, not measurements: the
per-step CUDA costs below assume each of 10 parallel runs gets about 2/3 (sentence) and 3/4
(lmseg) of its alone speed. Runs are cached, so a run cut short by a time limit loses only the
runs in flight: rerun the same command to finish.
"""

from __future__ import annotations

from dataclasses import dataclass

STEPS = {
    "sentence": {"cpu": 600, "cuda": 1000},
    "lmseg": {"cpu": 300, "cuda": 350},
    "dataseg": {"cpu": 300, "cuda": 400},
    "ms3": {"cpu": 300, "cuda": 900},
    "autounify": {"cpu": 600, "cuda": 1500},
}
"""Default training steps of every run of a paper's table (batch 8)."""

SECONDS_PER_STEP = {
    "sentence": {"cpu": 0.25, "cuda": 1 / 20},
    "lmseg": {"cpu": 0.6, "cuda": 1 / 3},
    "dataseg": {"cpu": 0.6, "cuda": 1 / 3},
    "ms3": {"cpu": 0.6, "cuda": 1 / 10},
    "autounify": {"cpu": 0.3, "cuda": 1 / 15},
}
"""Rough wall time of one step with one run at a time (CUDA: with 10 runs sharing the GPU)."""

RUN_OVERHEAD_S = {"cpu": 60.0, "cuda": 30.0}
"""Start-up and scoring of one run at the default scale (about 500 val images)."""

QUICK_STEPS = 3
QUICK_MAX_IMAGES = 2


@dataclass(frozen=True, kw_only=True)
class Budget:
    """What every run of a harness invocation gets.

    Attributes:
        steps: Explicit steps per run (None: the paper's default for the device).
        device: ``cpu`` / ``cuda``. quick: Toy budget (smoke test).
        max_images: Val images per dataset (None: all).
        threads: torch threads per run. workers: DataLoader workers per run.
    """

    steps: int | None
    device: str
    quick: bool
    max_images: int | None
    threads: int
    workers: int

    def steps_for(self, paper: str, fraction: float = 1.0) -> int:
        base = QUICK_STEPS if self.quick else self.steps or STEPS[paper][self.device]
        return max(1, round(base * fraction))

    def cost(self, paper: str, steps: int) -> float:
        """Estimated seconds of one run."""
        return steps * SECONDS_PER_STEP[paper][self.device] + RUN_OVERHEAD_S[self.device]
