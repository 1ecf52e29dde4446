"""The evidence harness's runner: cached results are reused, and --time-limit starts nothing
new once it has passed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from evidence_harness.job import RESULT  # noqa: E402
from evidence_harness.runs import RunSpec, cached, config_digest, execute  # noqa: E402


def _spec(run_dir: Path, seed: int = 0) -> RunSpec:
    return RunSpec(
        paper="sentence",
        name="HD",
        seed=seed,
        run_dir=str(run_dir),
        config="configs/default.yaml",
        overrides=("train.steps=1",),
        eval=("metro_drive",),
        max_images=1,
        device="cpu",
        cost=1.0,
    )


def test_a_finished_run_is_reused_only_under_the_same_spec(tmp_path):
    spec = _spec(tmp_path / "a")
    (tmp_path / "a").mkdir()
    result = {"spec": spec.to_dict(), "metrics": {"datasets": {}}}
    (tmp_path / "a" / RESULT).write_text(json.dumps(result))
    assert cached(spec) == result
    other = _spec(tmp_path / "a", seed=1)
    assert cached(other) is None
    failed = {"spec": spec.to_dict(), "error": "boom"}
    (tmp_path / "a" / RESULT).write_text(json.dumps(failed))
    assert cached(spec) is None  # failed runs are retried


def test_a_changed_config_file_is_not_reused(tmp_path):
    config = tmp_path / "dataseg.yaml"
    config.write_text("recipe:\n  mask:\n    aux_matching: last\n")
    before = config_digest(config)
    base = _spec(tmp_path / "a")
    fields = {k: getattr(base, k) for k in base.__dataclass_fields__}
    spec = RunSpec(**{**fields, "config": str(config), "config_digest": before})
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / RESULT).write_text(json.dumps({"spec": spec.to_dict(), "metrics": {}}))
    assert cached(spec) is None  # no config.yaml: nothing says what the run trained with
    (tmp_path / "a" / "config.yaml").write_text(config.read_text())  # as the trainer saves it
    assert cached(spec) is not None
    config.write_text("recipe:\n  mask:\n    aux_matching: per_layer\n")  # same path, new settings
    after = config_digest(config)
    assert after != before
    assert cached(RunSpec(**{**fields, "config": str(config), "config_digest": after})) is None


def test_another_recipes_section_is_outside_the_digest(tmp_path):
    ms3 = tmp_path / "ms3.yaml"
    ms3.write_text("recipe:\n  name: ms3\n")
    changed = tmp_path / "ms3_other.yaml"
    changed.write_text("recipe:\n  name: ms3\n  autounify:\n    drop_redundant: true\n")
    assert config_digest(ms3) == config_digest(changed)
    assert config_digest(ms3, ["recipe.ms3.momentum=0.9"]) != config_digest(ms3)
    assert config_digest(ms3, ["run_dir=elsewhere"]) == config_digest(ms3)
    auto = tmp_path / "auto.yaml"
    auto.write_text("recipe:\n  name: autounify\n")
    assert config_digest(auto, ["recipe.autounify.drop_redundant=true"]) != config_digest(auto)
    assert config_digest(tmp_path / "absent.yaml") == "missing"


def test_the_config_digest_is_of_the_resolved_configuration(tmp_path):
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text("train:\n  seed: 0\n")  # 0 is the code's default: same configuration
    implicit = tmp_path / "implicit.yaml"
    implicit.write_text("train:\n  steps: 7\n")
    assert config_digest(explicit, ["train.steps=7"]) == config_digest(implicit)
    assert config_digest(implicit, ["train.seed=1"]) != config_digest(implicit)
    (tmp_path / "bad.yaml").write_text("train:\n  stepz: 7\n")
    assert config_digest(tmp_path / "bad.yaml") == "invalid"


def test_time_limit_starts_no_run_after_it_passed(tmp_path):
    specs = [_spec(tmp_path / f"r{s}", seed=s) for s in range(3)]
    results = execute(specs, jobs=1, time_limit_s=-1.0)
    assert len(results) == 3
    assert all(r["error"] == "not run: --time-limit reached" for r in results.values())
    assert not any((tmp_path / f"r{s}").exists() for s in range(3))
