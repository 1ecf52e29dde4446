"""Run logging: metrics.jsonl, TensorBoard scalars, resume, disabled ranks, resolved config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from babelseg.engine.run_log import RunLogger, read_metrics, save_resolved_config


def test_jsonl_lines_are_flushed_and_converted(tmp_path):
    logger = RunLogger(tmp_path, tensorboard=False)
    logger.log(1, loss=torch.tensor(0.5), lr=np.float32(0.25), seen=np.int64(8))
    # Flushed at once: readable before close.
    assert (
        tmp_path / "metrics.jsonl"
    ).read_text() == '{"step": 1, "loss": 0.5, "lr": 0.25, "seen": 8}\n'
    logger.log(2, loss=0.125)
    logger.close()
    logger.close()  # twice is fine
    assert read_metrics(tmp_path) == [
        {"step": 1, "loss": 0.5, "lr": 0.25, "seen": 8},
        {"step": 2, "loss": 0.125},
    ]


def test_append_on_resume_and_drop_after_resume_step(tmp_path):
    with RunLogger(tmp_path, tensorboard=False) as logger:
        for step in (1, 2, 3, 4):
            logger.log(step, loss=float(step))
    with RunLogger(tmp_path, tensorboard=False) as logger:  # plain append
        logger.log(5, loss=5.0)
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4, 5]
    with RunLogger(tmp_path, tensorboard=False, resume_step=2) as logger:  # resumed from ckpt 2
        logger.log(3, loss=30.0)
    assert read_metrics(tmp_path) == [
        {"step": 1, "loss": 1.0},
        {"step": 2, "loss": 2.0},
        {"step": 3, "loss": 30.0},
    ]


def test_line_cut_short_by_a_crash_is_skipped(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "lo')
    with RunLogger(tmp_path, tensorboard=False) as logger:
        logger.log(2, loss=2.0)
    with pytest.warns(UserWarning, match=r"metrics\.jsonl:2"):
        records = read_metrics(tmp_path)
    assert records == [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 2.0}]


def test_disabled_logger_writes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    logger = RunLogger(run_dir, enabled=False)
    logger.log(1, loss=1.0)
    logger.close()
    assert not run_dir.exists()
    assert read_metrics(run_dir) == []


def test_bad_values_are_rejected(tmp_path):
    with RunLogger(tmp_path, tensorboard=False) as logger:
        with pytest.raises(ValueError, match="'loss' is a tensor of shape"):
            logger.log(1, loss=torch.ones(2))
        with pytest.raises(ValueError, match="'name' must be a number"):
            logger.log(1, name="abc")


def test_tensorboard_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with RunLogger(tmp_path) as logger:
        logger.log(10, **{"loss/city": 0.5})
        logger.log(20, **{"loss/city": 0.25})
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    scalars = events.Scalars("loss/city")
    assert [(s.step, s.value) for s in scalars] == [(10, 0.5), (20, 0.25)]

    with RunLogger(tmp_path, resume_step=10) as logger:  # events after step 10 are purged
        logger.log(20, **{"loss/city": 0.75})
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    scalars = events.Scalars("loss/city")
    assert [(s.step, s.value) for s in scalars] == [(10, 0.5), (20, 0.75)]


@dataclasses.dataclass
class _Train:
    steps: int = 10
    sizes: tuple[int, int] = (64, 32)
    out: Path = Path("runs/x")


def test_save_resolved_config(tmp_path):
    config = {"train": {"lr": 0.001, "steps": 5}, "data": {"train": ["a", "b"]}, "seed": 0}
    path = save_resolved_config(tmp_path / "run", config)
    assert path == tmp_path / "run" / "config.yaml"
    assert yaml.safe_load(path.read_text()) == config
    assert list(yaml.safe_load(path.read_text())) == ["train", "data", "seed"]  # order kept
    path = save_resolved_config(tmp_path / "run", _Train())  # overwrites, dataclass accepted
    assert yaml.safe_load(path.read_text()) == {"steps": 10, "sizes": [64, 32], "out": "runs/x"}
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.yaml"]  # no tmp left
    with pytest.raises(ValueError, match="'model.fn'"):
        save_resolved_config(tmp_path, {"model": {"fn": print}})
