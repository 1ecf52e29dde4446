"""Runs that start from another run's checkpoint (fine-tuning): the plan passes the start's
folder as ``train.init_from``, the runner trains the start first, keeps its checkpoints until the
runs that need them finished and then removes them. Training is faked throughout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from evidence_harness import runs  # noqa: E402
from evidence_harness.budget import Budget  # noqa: E402
from evidence_harness.claims import PaperTable, RunConfig  # noqa: E402
from evidence_harness.cli import plan  # noqa: E402
from evidence_harness.runs import RunSpec, execute, waves  # noqa: E402
from evidence_harness.world import DatasetRole, WorldRoles  # noqa: E402


def _spec(tmp: Path, name: str, *, seed: int = 0, start: str | None = None, **kw) -> RunSpec:
    return RunSpec(
        paper="ms3",
        name=name,
        seed=seed,
        run_dir=str(tmp / name / f"seed{seed}"),
        config="configs/ms3.yaml",
        overrides=(),
        eval=("a",),
        max_images=1,
        device="cpu",
        cost=10.0
        if start is None
        else 99.0,  # dependents cost more: cost alone would put them first
        init_from=None if start is None else str(tmp / start / f"seed{seed}"),
        **kw,
    )


class FakeJob:
    """``run_job`` without training: records the order, writes a checkpoint (kept only when
    the job would keep it) and fails the runs named in ``fail``."""

    def __init__(self, fail: tuple[str, ...] = ()) -> None:
        self.order: list[str] = []
        self.fail = fail

    def __call__(self, spec: dict) -> dict:
        self.order.append(spec["name"])
        if spec.get("init_from"):
            assert runs.has_checkpoint(spec["init_from"]), "its start has no checkpoint"
        run_dir = Path(spec["run_dir"])
        (run_dir / "latest").parent.mkdir(parents=True, exist_ok=True)
        (run_dir / "latest").write_text(
            "ckpt_0000003"
        )  # outlives the checkpoints, as the trainer's
        if spec.get("has_dependents") or spec["keep_checkpoints"]:
            (run_dir / "ckpt_0000003").mkdir(parents=True, exist_ok=True)
            (run_dir / "ckpt_0000003" / "state.json").write_text("{}")
        result = {"spec": spec, "metrics": {"datasets": {}}}
        if spec["name"] in self.fail:
            result = {"spec": spec, "error": "RuntimeError: boom"}
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / runs.RESULT).write_text(__import__("json").dumps(result))
        return result


def test_waves_put_every_run_after_its_start(tmp_path):
    pre = _spec(tmp_path, "pre", has_dependents=True)
    ft, ft1 = _spec(tmp_path, "ft", start="pre"), _spec(tmp_path, "ft", seed=1, start="pre")
    pre1, other = _spec(tmp_path, "pre", seed=1, has_dependents=True), _spec(tmp_path, "other")
    got = [[(s.name, s.seed) for s in w] for w in waves([ft1, ft, other, pre1, pre])]
    assert got == [[("other", 0), ("pre", 0), ("pre", 1)], [("ft", 0), ("ft", 1)]]
    # a start outside the list (cached) puts its dependents in the first wave
    assert [[s.name for s in w] for w in waves([ft])] == [["ft"]]
    loop_a = _spec(tmp_path, "a", start="b")
    loop_b = _spec(tmp_path, "b", start="a")
    with pytest.raises(ValueError, match="cycle"):
        waves([loop_a, loop_b])


def test_start_trains_first_and_its_checkpoints_go_once_dependents_finished(tmp_path, monkeypatch):
    job = FakeJob()
    monkeypatch.setattr(runs, "run_job", job)
    pre = _spec(tmp_path, "pre", has_dependents=True)
    specs = [_spec(tmp_path, "ft", start="pre"), _spec(tmp_path, "frozen", start="pre"), pre]
    results = execute(specs, jobs=1)
    assert job.order[0] == "pre" and sorted(job.order[1:]) == ["frozen", "ft"]
    assert not any("error" in r for r in results.values())
    assert not list(Path(pre.run_dir).glob("ckpt_*"))  # released once both finished
    # a rerun trains nothing: the start's checkpoint is gone but nothing needs it any more
    job.order.clear()
    execute(specs, jobs=1)
    assert job.order == []


def test_keep_checkpoints_keeps_the_start(tmp_path, monkeypatch):
    job = FakeJob()  # --jobs 2: each run in a subprocess, here the fake job
    monkeypatch.setattr(runs, "_subprocess", lambda spec: job(spec.to_dict()))
    pre = _spec(tmp_path, "pre", has_dependents=True, keep_checkpoints=True)
    execute([_spec(tmp_path, "ft", start="pre"), pre], jobs=2)
    assert job.order == ["pre", "ft"] and list(Path(pre.run_dir).glob("ckpt_*"))


def test_a_failed_start_skips_its_dependents_and_a_failed_dependent_keeps_it(tmp_path, monkeypatch):
    job = FakeJob(fail=("pre",))
    monkeypatch.setattr(runs, "run_job", job)
    pre = _spec(tmp_path, "pre", has_dependents=True)
    ft = _spec(tmp_path, "ft", start="pre")
    results = execute([ft, pre], jobs=1)
    assert job.order == ["pre"]
    assert "did not finish" in results[ft.key]["error"]
    # the start now trains but the fine-tuning fails: the start's checkpoint stays for a rerun
    job.fail, job.order = ("ft",), []
    execute([ft, pre], jobs=1)
    assert job.order == ["pre", "ft"] and list(Path(pre.run_dir).glob("ckpt_*"))
    # the rerun retries only the fine-tuning, from the kept checkpoint, then releases it
    job.fail, job.order = (), []
    execute([ft, pre], jobs=1)
    assert job.order == ["ft"] and not list(Path(pre.run_dir).glob("ckpt_*"))


def test_a_cached_start_without_checkpoint_trains_again_for_a_new_dependent(tmp_path, monkeypatch):
    job = FakeJob()
    monkeypatch.setattr(runs, "run_job", job)
    pre = _spec(tmp_path, "pre", has_dependents=True)
    execute([pre, _spec(tmp_path, "ft", start="pre")], jobs=1)
    assert not list(Path(pre.run_dir).glob("ckpt_*"))
    job.order = []
    execute([pre, _spec(tmp_path, "ft", start="pre"), _spec(tmp_path, "new", start="pre")], jobs=1)
    assert job.order == ["pre", "new"]


def test_spec_dict_leaves_unset_dependency_fields_out(tmp_path):
    """Results cached before dependent runs existed still match their spec."""
    plain = _spec(tmp_path, "plain").to_dict()
    assert "init_from" not in plain and "has_dependents" not in plain
    ft = _spec(tmp_path, "ft", start="pre").to_dict()
    assert ft["init_from"] == str(tmp_path / "pre" / "seed0")


def _plan(tmp_path: Path, configs: dict[str, RunConfig], keep: bool = False):
    role = DatasetRole(
        name="a", task="semantic", annotation="clean", heldout=False, format="png", labels={}
    )
    roles = WorldRoles(
        root=tmp_path, datasets_yaml=tmp_path / "d.yaml", datasets={"a": role, "b": role}
    )
    table = PaperTable(paper="ms3", title="t", configs=configs, claims=[])
    budget = Budget(steps=5, device="cpu", quick=False, max_images=1, threads=1, workers=0)
    args = argparse.Namespace(seeds=[0, 1], out=tmp_path / "out", keep_checkpoints=keep)
    return plan([table], roles, budget, args)[0]


def test_plan_passes_the_start_of_the_same_seed_as_init_from(tmp_path):
    configs = {
        "pre": RunConfig(config="configs/ms3.yaml", overrides=("data.train=[a]",)),
        "ft": RunConfig(
            config="configs/ms3_finetune.yaml",
            overrides=("data.train=[a]",),
            init_from="pre",
            eval=("a",),
        ),
    }
    specs = {(s.name, s.seed): s for s in _plan(tmp_path, configs)}
    for seed in (0, 1):
        pre, ft = specs[("pre", seed)], specs[("ft", seed)]
        assert pre.has_dependents and pre.init_from is None and pre.eval == ("a", "b")
        assert ft.init_from == pre.run_dir and not ft.has_dependents and ft.eval == ("a",)
        assert ft.overrides[-1] == f"train.init_from={pre.run_dir}"
        assert f"train.seed={seed}" in ft.overrides
    broken = {"ft": RunConfig(config="c.yaml", overrides=(), init_from="missing")}
    with pytest.raises(ValueError, match="missing"):
        _plan(tmp_path, broken)
