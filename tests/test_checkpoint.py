"""Atomic safetensors checkpoints: round trip, exact resume, crash recovery, pruning, no pickle."""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from babelseg.engine.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_model_weights,
    save_checkpoint,
)
from babelseg.engine.schedule import build_poly_scheduler


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3)
    )


def _parts(seed: int, total: int = 6):
    model = _model(seed)
    groups = [
        {"params": model[0].parameters(), "lr": 1e-2},
        {"params": list(model[1].parameters()) + list(model[4].parameters()), "lr": 2e-2},
    ]
    opt = torch.optim.AdamW(groups, lr=1e-2, weight_decay=0.05)
    sched = build_poly_scheduler(opt, total_steps=total, warmup_steps=2)
    return model, opt, sched


def _train(model, opt, sched, steps: int) -> None:
    """Steps on random data drawn from the global torch RNG (and dropout), so RNG state matters."""
    model.train()
    for _ in range(steps):
        x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def _assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_round_trip(tmp_path):
    model, opt, sched = _parts(0)
    _train(model, opt, sched, 2)
    text = torch.randn(3, 5)
    state = {"config": {"lr": 0.01, "names": ("road", "car")}, "ids": {1: "a", 2: "b"}}
    path = save_checkpoint(
        tmp_path,
        step=2,
        model=model,
        optimizer=opt,
        scheduler_state=sched.state_dict(),
        extra_tensors={"text/city": text},
        state=state,
    )
    assert path == tmp_path / "ckpt_0000002"
    assert (tmp_path / "latest").read_text().strip() == "ckpt_0000002"
    assert {p.name for p in path.iterdir()} == {
        "model.safetensors",
        "optimizer.safetensors",
        "rng.safetensors",
        "extra.safetensors",
        "state.json",
    }
    opt_tensors = load_file(path / "optimizer.safetensors")
    assert {"state.0.exp_avg", "state.0.exp_avg_sq", "state.0.step"} <= set(opt_tensors)
    assert load_file(path / "rng.safetensors")["rng.torch_cpu"].dtype == torch.uint8

    model2, opt2, sched2 = _parts(1)
    loaded = load_checkpoint(latest_checkpoint(tmp_path), model=model2, optimizer=opt2)
    _assert_same_weights(model, model2)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    assert s2["param_groups"][0]["betas"] == (0.9, 0.999)  # tuple stays a tuple
    for pid, entry in s1["state"].items():
        for key, value in entry.items():
            assert torch.equal(value, s2["state"][pid][key]), (pid, key)
    assert loaded.step == 2
    assert loaded.state == state
    assert loaded.scheduler_state == sched.state_dict()
    assert torch.equal(loaded.extra_tensors["text/city"], text)


@pytest.mark.parametrize("restore_rng", [True, False])
def test_resume_is_bit_identical(tmp_path, restore_rng):
    torch.manual_seed(100)
    model, opt, sched = _parts(0)
    _train(model, opt, sched, 6)

    torch.manual_seed(100)
    model_a, opt_a, sched_a = _parts(0)
    _train(model_a, opt_a, sched_a, 3)
    save_checkpoint(
        tmp_path, step=3, model=model_a, optimizer=opt_a, scheduler_state=sched_a.state_dict()
    )
    del model_a, opt_a, sched_a
    torch.manual_seed(999)  # a fresh process would start elsewhere
    model_b, opt_b, sched_b = _parts(5)
    loaded = load_checkpoint(tmp_path, model=model_b, optimizer=opt_b, restore_rng=restore_rng)
    sched_b.load_state_dict(loaded.scheduler_state)
    _train(model_b, opt_b, sched_b, 3)

    if restore_rng:
        _assert_same_weights(model, model_b)
        assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in opt_b.param_groups]
    else:  # the random batches differ, so the weights do: the RNG restore is what matters
        assert not torch.equal(model[0].weight, model_b[0].weight)


def test_python_and_numpy_rng_restored(tmp_path):
    random.seed(3)
    np.random.seed(3)
    save_checkpoint(tmp_path, step=1, model=nn.Linear(2, 2), optimizer=None)
    expected = (random.random(), np.random.rand(), np.random.randn())
    random.seed(4)
    np.random.seed(4)
    load_checkpoint(tmp_path, model=nn.Linear(2, 2))
    assert (random.random(), np.random.rand(), np.random.randn()) == expected


def test_crash_leaves_previous_checkpoint_loadable(tmp_path):
    model, opt, sched = _parts(0)
    for step in (1, 2, 3):
        _train(model, opt, sched, 1)
        save_checkpoint(tmp_path, step=step, model=model, optimizer=opt, keep_last=5)
    # Crash 1: a save interrupted mid-way left its temporary folder behind.
    stale = tmp_path / "ckpt_0000004.tmp-99999"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"partial")
    # Crash 2: ckpt 3 got damaged and `latest` still names ckpt 2 (pointer update lost).
    weights = tmp_path / "ckpt_0000003" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    (tmp_path / "latest").write_text("ckpt_0000002\n")

    assert latest_checkpoint(tmp_path) == tmp_path / "ckpt_0000002"
    assert load_checkpoint(latest_checkpoint(tmp_path), model=_model(1)).step == 2
    with pytest.raises(ValueError, match=r"model\.safetensors.*ckpt_0000002"):
        load_checkpoint(tmp_path / "ckpt_0000003", model=_model(1))

    # The next save removes the leftover folder.
    save_checkpoint(tmp_path, step=4, model=model, optimizer=opt, keep_last=5)
    assert not stale.exists()
    assert latest_checkpoint(tmp_path) == tmp_path / "ckpt_0000004"


def test_corrupt_files_name_the_file_and_the_previous_checkpoint(tmp_path):
    model, opt, sched = _parts(0)
    _train(model, opt, sched, 1)
    for step in (1, 2):
        save_checkpoint(tmp_path, step=step, model=model, optimizer=opt)
    ckpt = tmp_path / "ckpt_0000002"
    state_json = ckpt / "state.json"
    good = state_json.read_text()
    state_json.write_text(good[:-20])
    with pytest.raises(ValueError, match=r"state\.json.*ckpt_0000001"):
        load_checkpoint(ckpt, model=_model(1))
    state_json.write_text(good)
    opt_file = ckpt / "optimizer.safetensors"
    data = opt_file.read_bytes()
    opt_file.write_bytes(b"\xff" * 8 + data[8:])  # same size, broken header
    with pytest.raises(ValueError, match=r"optimizer\.safetensors.*ckpt_0000001"):
        load_checkpoint(ckpt, model=_model(1), optimizer=_parts(1)[1])
    opt_file.unlink()
    with pytest.raises(FileNotFoundError, match=r"optimizer\.safetensors"):
        load_checkpoint(ckpt, model=_model(1))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere", model=_model(1))


def test_pointer_to_deleted_checkpoint_falls_back(tmp_path):
    model = _model(0)
    for step in (5, 7):
        save_checkpoint(tmp_path, step=step, model=model, optimizer=None)
    (tmp_path / "latest").write_text("ckpt_0000009\n")
    assert latest_checkpoint(tmp_path) == tmp_path / "ckpt_0000007"
    assert latest_checkpoint(tmp_path / "empty") is None


def test_keep_last_prunes_and_resave_replaces(tmp_path):
    model = _model(0)
    for step in range(1, 6):
        save_checkpoint(tmp_path, step=step, model=model, optimizer=None, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt_0000004", "ckpt_0000005"]
    with torch.no_grad():
        model[0].weight.fill_(3.0)
    save_checkpoint(tmp_path, step=5, model=model, optimizer=None, keep_last=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt_0000004", "ckpt_0000005", "latest"]
    other = _model(1)
    load_model_weights(tmp_path, other)
    assert torch.all(other[0].weight == 3.0)
    with pytest.raises(ValueError, match="keep_last"):
        save_checkpoint(tmp_path, step=6, model=model, optimizer=None, keep_last=0)


def test_loading_never_unpickles(tmp_path, monkeypatch):
    model, opt, sched = _parts(0)
    _train(model, opt, sched, 1)
    save_checkpoint(
        tmp_path, step=1, model=model, optimizer=opt, extra_tensors={"e": torch.ones(2)}
    )

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used")

    for target, name in [(pickle, "load"), (pickle, "loads"), (torch, "load")]:
        monkeypatch.setattr(target, name, forbidden)
    model2, opt2, _ = _parts(1)
    assert load_checkpoint(tmp_path, model=model2, optimizer=opt2).step == 1
    load_model_weights(tmp_path / "ckpt_0000001" / "model.safetensors", _model(2))
    _assert_same_weights(model, model2)


class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(5, 3)
        self.out = nn.Linear(3, 5, bias=False)
        self.out.weight = self.embed.weight  # tied
        self.register_buffer("table", torch.arange(6.0).reshape(2, 3).t())  # non-contiguous


def test_tied_weights_non_contiguous_and_wrapped_models(tmp_path):
    torch.manual_seed(0)
    model = _Tied()
    base = torch.arange(12.0).reshape(3, 4)
    extra = {"row": base[1], "col": base[:, 2], "all": base}  # views sharing memory
    save_checkpoint(
        tmp_path, step=1, model=nn.DataParallel(model), optimizer=None, extra_tensors=extra
    )
    torch.manual_seed(1)
    other = _Tied()
    loaded = load_checkpoint(tmp_path, model=nn.DataParallel(other))
    assert other.out.weight is other.embed.weight
    assert torch.equal(other.embed.weight, model.embed.weight)
    assert torch.equal(other.table, torch.tensor([[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]))
    assert torch.equal(loaded.extra_tensors["col"], torch.tensor([2.0, 6.0, 10.0]))
    assert torch.equal(loaded.extra_tensors["row"], torch.tensor([4.0, 5.0, 6.0, 7.0]))


def test_user_errors(tmp_path):
    model = _model(0)
    with pytest.raises(ValueError, match=r"state\.bad"):
        save_checkpoint(tmp_path, step=1, model=model, optimizer=None, state={"bad": object()})
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    save_checkpoint(tmp_path, step=1, model=model, optimizer=None)
    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(tmp_path, model=_model(1), optimizer=_parts(1)[1])
    with pytest.raises(ValueError, match="do not fit"):
        load_model_weights(tmp_path, nn.Linear(4, 3))
    meta = json.loads((tmp_path / "ckpt_0000001" / "state.json").read_text())
    assert meta["step"] == 1 and meta["optimizer"] is None


def test_optimizer_before_its_first_step(tmp_path):
    fresh = _parts(0)[1]
    save_checkpoint(tmp_path, step=0, model=_model(0), optimizer=fresh)
    assert not (tmp_path / "ckpt_0000000" / "optimizer.safetensors").exists()  # no tensors yet
    opt = _parts(1)[1]
    load_checkpoint(tmp_path, model=_model(1), optimizer=opt)
    assert opt.state_dict() == fresh.state_dict()


_SAVER = """
import sys, torch
from babelseg.engine.checkpoint import save_checkpoint
model = torch.nn.Linear(256, 256)
for step in range(1, 100000):
    with torch.no_grad():
        model.weight.fill_(float(step))
    save_checkpoint(sys.argv[1], step=step, model=model, optimizer=None, keep_last=2)
    print(step, flush=True)
"""


def test_kill_during_saves_leaves_a_loadable_latest(tmp_path):
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SAVER, str(tmp_path)], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "1"  # first save done; keep saving a while
        time.sleep(0.3)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    latest = latest_checkpoint(tmp_path)
    model = nn.Linear(256, 256)
    step = load_checkpoint(latest, model=model).step
    assert step >= 1 and torch.all(model.weight == float(step))
    save_checkpoint(tmp_path, step=step + 1, model=model, optimizer=None, keep_last=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert all(n == "latest" or n.startswith("ckpt_") and "." not in n for n in names), names
