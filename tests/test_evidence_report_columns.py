"""The evidence report's configuration table: with ``PaperTable.scored`` its mIoU column is the
mean over those datasets (the claims' metric), not over every evaluated dataset."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from evidence_harness.claims import PaperTable, RunConfig  # noqa: E402
from evidence_harness.report import _config_rows  # noqa: E402


def _metrics(a: float, b: float, other: float) -> dict:
    datasets = {"a": {"mIoU": a}, "b": {"mIoU": b}, "web": {"mIoU": other}}
    return {"metrics": {"datasets": datasets, "mean_mIoU": (a + b + other) / 3}}


def _row(scored: tuple[str, ...]) -> str:
    config = RunConfig(config="configs/ms3.yaml", overrides=("data.train=[a, b]",))
    table = PaperTable(paper="ms3", title="t", configs={"V": config}, claims=[], scored=scored)
    results = {("V", 0): _metrics(30.0, 40.0, 2.0), ("V", 1): _metrics(34.0, 44.0, 5.0)}
    lines = _config_rows(table, results, [0, 1], {"V": 300})
    return lines[0] + "\n" + next(line for line in lines if line.startswith("| V |"))


def test_the_configuration_table_reports_the_scored_datasets_mean():
    report = _row(("a", "b"))
    assert "mean mIoU of a, b" in report
    assert "| 300 | 37.0 |" in report  # (35 + 39) / 2; "web" left out


def test_without_scored_datasets_it_reports_every_evaluated_one():
    report = _row(())
    assert "training mean mIoU" in report
    assert "| 300 | 25.8 |" in report  # (24 + 27.67) / 2, "web" included
