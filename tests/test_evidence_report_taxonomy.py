"""The evidence report's learned-taxonomy section: per configuration, the pair scores and the
unified class counts of every seed that learned a taxonomy; nothing for papers without one."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from evidence_harness.claims import PaperTable, RunConfig  # noqa: E402
from evidence_harness.report import _taxonomy_lines, taxonomy_scores  # noqa: E402


def _taxonomy(f1: float, unified: int) -> dict:
    return {"precision": 0.9, "recall": 0.8, "f1": f1, "num_unified": unified, "num_world": 33}


def _table() -> PaperTable:
    config = RunConfig(config="configs/autounify.yaml", overrides=("data.train=[a]",))
    return PaperTable(
        paper="autounify", title="t", configs={"learned": config, "multi-head": config}, claims=[]
    )


def test_taxonomy_scores_per_configuration_and_seed():
    results = {
        ("learned", 0): {"metrics": {"taxonomy": _taxonomy(0.80, 43)}},
        ("learned", 1): {"metrics": {"taxonomy": _taxonomy(0.90, 41)}},
        ("learned", 2): {"error": "killed"},  # a failed seed is left out, not scored 0
        ("multi-head", 0): {"metrics": {"datasets": {}}},  # no taxonomy: no line
    }
    scores = taxonomy_scores(_table(), results, [0, 1, 2])
    assert set(scores) == {"learned"}
    assert scores["learned"]["f1"] == {"0": 0.80, "1": 0.90}
    assert scores["learned"]["num_unified"] == {"0": 43.0, "1": 41.0}
    lines = _taxonomy_lines(scores)
    row = next(line for line in lines if line.startswith("| learned |"))
    # mean 0.85, sample sd 0.0707; the counts of each seed; the world's class count
    assert "0.850 ± 0.071" in row and "| 43, 41 |" in row and row.endswith("| 33 |")


def test_no_taxonomy_no_section():
    results = {("learned", 0): {"metrics": {"datasets": {}}}}
    assert taxonomy_scores(_table(), results, [0]) == {}
    assert _taxonomy_lines({}) == []
