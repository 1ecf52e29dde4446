"""A claim of a paper: its effect, and the two measures whose per-seed difference tests it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

Metrics = Mapping[str, Any]
"""The ``metrics.json`` mapping of one scored run (``babelseg.evaluation.report``)."""


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """One trained configuration of a paper's table (run once per seed).

    Attributes:
        config: Config YAML of the repository (``configs/...``).
        overrides: ``key=value`` overrides (data.train included).
        steps_fraction: Share of the paper's step budget (matched-exposure rows train less).
        phases: ``(config key, share of the run's steps)`` pairs: step-counted phases of a
            recipe kept at the same share of training whatever the budget.
        note: What the configuration is, for the report.
        init_from: The configuration of the same table whose final checkpoint (same seed)
            initialises this one (``train.init_from``: fine-tuning); it trains first.
        eval: The datasets to score (None: every dataset of the world).
    """

    config: str
    overrides: tuple[str, ...]
    steps_fraction: float = 1.0
    phases: tuple[tuple[str, float], ...] = ()
    note: str = ""
    init_from: str | None = None
    eval: tuple[str, ...] | None = None

    def overrides_for(self, steps: int) -> list[str]:
        """The overrides with the phases scaled to ``steps``."""
        scaled = [f"{key}={max(1, round(share * steps))}" for key, share in self.phases]
        return [*self.overrides, *scaled]


@dataclass(frozen=True, kw_only=True)
class Measure:
    """A number computed from one seed's scored runs.

    Attributes:
        label: What it is (``"HD + noisy (L_LD)"``).
        runs: The configurations it reads.
        value: ``({config name: metrics}) -> float`` (NaN when it cannot be computed).
    """

    label: str
    runs: tuple[str, ...]
    value: Callable[[Mapping[str, Metrics]], float]


@dataclass(frozen=True, kw_only=True)
class Claim:
    """One row of a paper's evidence table.

    Attributes:
        claim: The claim in words. table: Where the paper makes it.
        paper_effect: The paper's effect as text (``"+0.50 mIoU (52.91 -> 53.41)"``).
        paper_sign: +1 when the paper finds treatment > control, -1 when below.
        metric: What our number measures. treatment / control: The compared measures.
        note: How our conditions differ from the paper's.
    """

    claim: str
    table: str
    paper_effect: str
    paper_sign: int
    metric: str
    treatment: Measure
    control: Measure
    note: str = ""

    @property
    def runs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self.treatment.runs, *self.control.runs]))


@dataclass(frozen=True, kw_only=True)
class PaperTable:
    """What the harness measures for one paper on one world.

    Attributes:
        paper: Short name (``sentence``). title: The paper's title.
        configs: ``{configuration name: RunConfig}``, each trained once per seed.
        claims: The rows. not_measured: The paper's claims this table leaves out, and why.
        scored: The datasets whose mean mIoU the configuration table reports (the claims'
            metric); empty: every evaluated dataset that is not held out.
    """

    paper: str
    title: str
    configs: dict[str, RunConfig]
    claims: list[Claim]
    not_measured: list[str] = field(default_factory=list)
    scored: tuple[str, ...] = ()

    def restricted(self, names: Sequence[str]) -> PaperTable:
        """The table with only the configurations ``names`` (and those they start from) and the
        claims that need no other run: a rerun of some rows, not a full table."""
        unknown = [n for n in names if n not in self.configs]
        if unknown:
            raise ValueError(
                f"{self.paper}: no configuration(s) {unknown}; it has {', '.join(self.configs)}."
            )
        keep = set(names)
        keep |= {self.configs[n].init_from for n in names if self.configs[n].init_from}
        claims = [c for c in self.claims if set(c.treatment.runs) | set(c.control.runs) <= keep]
        configs = {n: cfg for n, cfg in self.configs.items() if n in keep}
        return replace(self, configs=configs, claims=claims)


def dataset_score(metrics: Metrics, dataset: str, key: str) -> float:
    """``metrics["datasets"][dataset][key]`` or NaN when absent (skipped, not scored)."""
    value = metrics.get("datasets", {}).get(dataset, {}).get(key)
    return float("nan") if value is None else float(value)


def mean_of(values: Sequence[float]) -> float:
    """The plain mean: one NaN makes it NaN (a dataset that was not scored fails the measure)."""
    return sum(values) / len(values) if values else float("nan")


def mean_score(run: str, datasets: Sequence[str], key: str) -> Callable[[Mapping], float]:
    """A ``Measure.value``: the mean of ``key`` over ``datasets`` in run ``run``."""

    def value(runs: Mapping[str, Metrics]) -> float:
        return mean_of([dataset_score(runs[run], d, key) for d in datasets])

    return value


def label_iou(run: str, labels: Mapping[str, Sequence[str]]) -> Callable[[Mapping], float]:
    """A ``Measure.value``: the mean per-class IoU of the named ``{dataset: [labels]}`` in run
    ``run`` (labels absent from a dataset's val split, IoU null, are left out)."""

    def value(runs: Mapping[str, Metrics]) -> float:
        ious = []
        for dataset, names in labels.items():
            per_class = runs[run].get("datasets", {}).get(dataset, {}).get("per_class", {})
            ious += [float(per_class[n]) for n in names if per_class.get(n) is not None]
        return mean_of(ious)

    return value


def own_run_scores(
    runs_of: Mapping[str, str], key_of: Mapping[str, str]
) -> Callable[[Mapping], float]:
    """A ``Measure.value``: the mean over datasets of each dataset's score in its own run
    (``runs_of = {dataset: run}``; ``key_of = {dataset: metric key}``)."""

    def value(runs: Mapping[str, Metrics]) -> float:
        return mean_of([dataset_score(runs[r], d, key_of[d]) for d, r in runs_of.items()])

    return value
