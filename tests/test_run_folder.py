"""A fresh `train` never mixes with an earlier run in its folder: refused unless --resume (continue)
or --overwrite (cleared first), and a folder that is not a run is never cleared."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from babelseg.cli.main import main
from babelseg.engine.run_folder import prepare_run_folder


def _fake_run(folder: Path) -> None:
    (folder / "ckpt_0000004").mkdir(parents=True)
    (folder / "ckpt_0000004" / "state.json").write_text("{}")
    (folder / "metrics.jsonl").write_text('{"step": 4, "loss": 1.0}\n')
    (folder / "config.yaml").write_text("run_dir: x\n")


def test_a_fresh_run_into_an_earlier_run_is_refused_and_touches_nothing(
    tiny_run_config, tmp_path, capsys
):
    cfg = tiny_run_config("taken")
    run_dir = tmp_path / "taken"
    _fake_run(run_dir)
    before = sorted(p.name for p in run_dir.rglob("*"))
    assert main(["train", cfg, "--no-eval"]) == 2
    err = capsys.readouterr().err
    assert str(run_dir) in err and "--resume" in err and "--overwrite" in err
    assert sorted(p.name for p in run_dir.rglob("*")) == before
    assert (run_dir / "metrics.jsonl").read_text() == '{"step": 4, "loss": 1.0}\n'


def test_overwrite_clears_the_earlier_run_first(tiny_run_config, tmp_path):
    cfg = tiny_run_config("again")
    run_dir = tmp_path / "again"
    _fake_run(run_dir)
    assert main(["train", cfg, "train.steps=2", "--overwrite", "--no-eval"]) == 0
    assert not (run_dir / "ckpt_0000004").exists()
    steps = [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]  # nothing appended to the old metrics
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["steps"] == 2


def test_a_folder_that_is_not_a_run_is_never_cleared(tmp_path):
    (tmp_path / "thesis.tex").write_text("years of work")
    prepare_run_folder(tmp_path, overwrite=True)  # no earlier run there: used as it is
    assert (tmp_path / "thesis.tex").read_text() == "years of work"


def test_empty_or_missing_folders_are_fine(tmp_path):
    prepare_run_folder(tmp_path / "new", overwrite=False)
    (tmp_path / "empty").mkdir()
    prepare_run_folder(tmp_path / "empty", overwrite=False)


def test_resume_and_overwrite_together_are_refused(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path), "--overwrite"]) == 2
    assert "pick one" in capsys.readouterr().err
