"""Paired per-seed differences, their 95 % t-interval, and the verdict against the paper."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

INTERVAL = "95 % Student-t interval of the mean paired (same-seed) difference"
QUICK_VERDICT = "inconclusive (--quick: toy budget, means nothing)"


@dataclass(frozen=True, kw_only=True)
class Interval:
    """Summary of paired differences ``treatment - control`` over seeds.

    Attributes:
        mean: Mean difference. sd: Sample standard deviation (NaN for n < 2). n: Seeds.
        low / high: 95 % t-interval of the mean (NaN for n < 2).
    """

    mean: float
    sd: float
    n: int
    low: float
    high: float


def paired_interval(differences: Sequence[float]) -> Interval:
    """The mean of ``differences`` with its 95 % Student-t interval (``n - 1`` degrees of
    freedom); NaN values (a failed or unscored run) are left out."""
    d = [float(x) for x in differences if not math.isnan(float(x))]
    n = len(d)
    if n == 0:
        nan = float("nan")
        return Interval(mean=nan, sd=nan, n=0, low=nan, high=nan)
    mean = sum(d) / n
    if n < 2:
        nan = float("nan")
        return Interval(mean=mean, sd=nan, n=n, low=nan, high=nan)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return Interval(mean=mean, sd=sd, n=n, low=mean - half, high=mean + half)


def verdict(interval: Interval, paper_sign: int, *, quick: bool) -> str:
    """``reproduced`` (our effect has the paper's sign and the interval excludes zero),
    ``contradicted`` (opposite sign, interval excludes zero) or ``inconclusive``."""
    if quick:
        return QUICK_VERDICT
    if interval.n < 2 or math.isnan(interval.low):
        return "inconclusive (fewer than 2 seeds scored)"
    if interval.low > 0 or interval.high < 0:
        ours = 1 if interval.mean > 0 else -1
        return "reproduced" if ours == paper_sign else "contradicted"
    return "inconclusive"
