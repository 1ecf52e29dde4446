"""MS3 Table 1 in the evidence harness: a run's Table 1 is copied from its final checkpoint into
its stored metrics before the checkpoints are deleted, and the Table 1 rows read the right
similarities (after M_I vs the frozen encoder / the initial context)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from evidence_harness.job import RESULT, recipe_tables, run_job  # noqa: E402
from evidence_harness.papers import ms3  # noqa: E402
from evidence_harness.report import claim_row  # noqa: E402
from evidence_harness.world import DatasetRole, WorldRoles  # noqa: E402

from babelseg.engine.checkpoint import save_checkpoint  # noqa: E402


def _table1(after: float) -> dict:
    """A Table 1 as the ms3 recipe records it; every number distinct, so a Measure that reads
    the wrong entry gives another value."""
    return {
        "frozen_encoder": {"mean": 0.8, "pairs": {"a | b": 0.95, "c | d": 0.9}},
        "before": {"mean": 0.6, "pairs": {"a | b": 0.7, "c | d": 0.5}},
        "after": {"mean": after, "pairs": {"a | b": 0.3, "c | d": 0.1}},
        "pairs": [["a", "b"], ["c", "d"]],
        "stage_steps": 1,
    }


def _checkpoint(run_dir: Path, recipe_state: dict) -> None:
    save_checkpoint(
        run_dir,
        step=1,
        model=nn.Linear(2, 2),
        optimizer=None,
        state={"config": {}, "recipe_state": recipe_state},
    )


def test_recipe_tables_reads_table1_from_the_latest_checkpoint(tmp_path):
    _checkpoint(tmp_path / "ms3", {"table1": _table1(0.2)})
    assert recipe_tables(tmp_path / "ms3") == {"table1": _table1(0.2)}
    _checkpoint(tmp_path / "union", {})  # a recipe that keeps no table
    assert recipe_tables(tmp_path / "union") == {}
    with pytest.raises(FileNotFoundError):
        recipe_tables(tmp_path / "empty")


def test_run_job_keeps_table1_in_the_result_and_deletes_the_checkpoint(tmp_path, monkeypatch):
    """``run_job`` with training and scoring faked: the checkpoint the fake training writes is
    gone afterwards, its Table 1 is in the stored metrics."""
    import babelseg.data.declaration as declaration
    import babelseg.engine.config as config
    import babelseg.engine.trainer as trainer
    import babelseg.evaluation.runner as runner
    import babelseg.inference.predictor as predictor
    from babelseg.engine.run_folder import is_run_folder

    run_dir = tmp_path / "run"
    _checkpoint(run_dir, {})  # an earlier attempt's leftovers, which a fresh train refuses
    (run_dir / "config.yaml").write_text("{}")

    def fake_train(cfg, show_progress):
        assert not is_run_folder(run_dir), sorted(p.name for p in run_dir.iterdir())
        _checkpoint(run_dir, {"table1": _table1(0.2)})
        return SimpleNamespace(final_loss=1.0)

    cfg = SimpleNamespace(data=SimpleNamespace(datasets_yaml=str(tmp_path / "datasets.yaml")))
    monkeypatch.setattr(config, "load_config", lambda path, overrides: cfg)
    monkeypatch.setattr(trainer, "train", fake_train)
    monkeypatch.setattr(declaration, "load_declarations", lambda path: {})
    monkeypatch.setattr(
        predictor.Predictor, "from_checkpoint", lambda d, device: SimpleNamespace(recipe=None)
    )
    monkeypatch.setattr(runner, "evaluate_datasets", lambda *a, **k: {"datasets": {}})
    spec = {"run_dir": str(run_dir), "config": "x.yaml", "overrides": [], "eval": []}
    spec |= {"max_images": 1, "device": "cpu"}
    result = run_job(spec)
    assert "error" not in result, result.get("error")
    assert result["metrics"]["table1"] == _table1(0.2)
    assert not list(run_dir.glob("ckpt_*"))
    assert json.loads((run_dir / RESULT).read_text())["metrics"]["table1"] == _table1(0.2)


def _roles(tmp_path: Path) -> WorldRoles:
    role = DatasetRole(
        name="a", task="semantic", annotation="clean", heldout=False, format="png", labels={}
    )
    return WorldRoles(root=tmp_path, datasets_yaml=tmp_path / "d.yaml", datasets={"a": role})


def test_table1_rows_read_after_against_frozen_and_initial_texts(tmp_path):
    table = ms3.table(_roles(tmp_path))
    rows = {c.claim: c for c in table.claims if c.table == "MS3 Table 1"}
    assert len(rows) == 3 and all(c.paper_sign == -1 for c in rows.values())
    assert all("0.92" in c.paper_effect or "0.77 -> 0.11" in c.paper_effect for c in rows.values())
    assert not any("Table 1" in note for note in table.not_measured)
    assert ms3.TABLE1_RUN in table.configs
    # two seeds of the L + V run: after M_I the mean similarity is 0.2, then 0.3
    results = {(ms3.TABLE1_RUN, s): {"metrics": {"table1": _table1(0.2 + s / 10)}} for s in (0, 1)}
    meta = {"paper": "ms3", "steps": 3, "device": "cpu", "quick": False}
    frozen = claim_row(
        rows["M_I lowers the mean class-text similarity of the frozen text encoder"],
        results,
        [0, 1],
        meta,
    )
    assert frozen["control"]["per_seed"] == {"0": 0.8, "1": 0.8}
    assert frozen["treatment"]["per_seed"] == {"0": 0.2, "1": 0.3}
    assert frozen["mean"] == pytest.approx(0.25 - 0.8, abs=1e-6)
    learned = claim_row(
        rows["learning the prompt context (M_I) lowers the mean class-text similarity"],
        results,
        [0, 1],
        meta,
    )
    assert learned["control"]["per_seed"] == {"0": 0.6, "1": 0.6}
    assert learned["mean"] == pytest.approx(0.25 - 0.6, abs=1e-6)
    pairs = claim_row(
        rows["M_I lowers the similarity of the most alike class pairs"], results, [0, 1], meta
    )
    assert pairs["treatment"]["per_seed"] == {"0": 0.2, "1": 0.2}  # mean of 0.3 and 0.1
    assert pairs["control"]["per_seed"] == {"0": 0.925, "1": 0.925}
    assert pairs["verdict"] == "reproduced"  # the paper's sign, an interval excluding zero


def test_table1_measure_is_nan_without_a_table1_or_an_after():
    value = ms3.table1_similarity("L + V", "after")
    assert math.isnan(value({"L + V": {"datasets": {}}}))  # a run scored before this existed
    no_after = {k: v for k, v in _table1(0.2).items() if k != "after"}  # M_I never ended
    assert math.isnan(value({"L + V": {"table1": no_after}}))
    assert value({"L + V": {"table1": _table1(0.2)}}) == pytest.approx(0.2)
