"""Poly learning-rate schedule with linear warm-up: known values."""

from __future__ import annotations

import json

import pytest
import torch

from babelseg.engine.schedule import build_poly_scheduler, poly_lr_factor


def test_warmup_values():
    kw = dict(total_steps=110, warmup_steps=10, power=0.9, warmup_start=0.1)
    assert poly_lr_factor(0, **kw) == pytest.approx(0.1)
    assert poly_lr_factor(5, **kw) == pytest.approx(0.55)  # halfway through warm-up
    assert poly_lr_factor(10, **kw) == pytest.approx(1.0)  # end of warm-up


def test_decay_values():
    kw = dict(total_steps=110, warmup_steps=10, power=0.9, warmup_start=0.1)
    assert poly_lr_factor(60, **kw) == pytest.approx(0.5**0.9)  # halfway: 0.5358867...
    assert poly_lr_factor(60, **kw) == pytest.approx(0.535886731268146)
    assert poly_lr_factor(109, **kw) == pytest.approx(0.01**0.9)  # last step: 0.0158489...
    assert poly_lr_factor(110, **kw) == 0.0
    assert poly_lr_factor(500, **kw) == 0.0


def test_min_factor_and_no_warmup():
    kw = dict(total_steps=10, warmup_steps=0, power=1.0, min_factor=0.2)
    assert poly_lr_factor(0, **kw) == pytest.approx(1.0)
    assert poly_lr_factor(5, **kw) == pytest.approx(0.6)  # 0.2 + 0.8 * 0.5
    assert poly_lr_factor(10, **kw) == pytest.approx(0.2)


def test_warmup_longer_than_run_ramps_all_the_way():
    assert poly_lr_factor(4, total_steps=5, warmup_steps=10) == pytest.approx(0.46)
    assert poly_lr_factor(5, total_steps=5, warmup_steps=10) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(step=0, total_steps=0, warmup_steps=0),
        dict(step=0, total_steps=10, warmup_steps=-1),
        dict(step=-1, total_steps=10, warmup_steps=0),
        dict(step=0, total_steps=10, warmup_steps=0, power=0.0),
        dict(step=0, total_steps=10, warmup_steps=0, warmup_start=1.5),
    ],
)
def test_bad_arguments(kwargs):
    step = kwargs.pop("step")
    with pytest.raises(ValueError):
        poly_lr_factor(step, **kwargs)


def _lrs(opt: torch.optim.Optimizer) -> list[float]:
    return [g["lr"] for g in opt.param_groups]


def _optimizer() -> torch.optim.Optimizer:
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    return torch.optim.SGD([{"params": [a], "lr": 1.0}, {"params": [b], "lr": 0.1}], lr=1.0)


def test_scheduler_scales_every_group_and_resumes():
    opt = _optimizer()
    sched = build_poly_scheduler(opt, total_steps=20, warmup_steps=10, power=1.0)
    assert _lrs(opt) == pytest.approx([0.1, 0.01])  # factor(0) = warmup_start
    for _ in range(10):
        opt.step()
        sched.step()
    assert _lrs(opt) == pytest.approx([1.0, 0.1])  # end of warm-up
    for _ in range(5):
        opt.step()
        sched.step()
    assert _lrs(opt) == pytest.approx([0.5, 0.05])  # halfway through decay, power 1
    state = json.loads(json.dumps(sched.state_dict()))  # plain JSON data

    opt2 = _optimizer()
    sched2 = build_poly_scheduler(opt2, total_steps=20, warmup_steps=10, power=1.0)
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(state)
    for _ in range(4):
        opt.step()
        sched.step()
        opt2.step()
        sched2.step()
    assert _lrs(opt2) == _lrs(opt) == pytest.approx([0.1, 0.01])  # step 19 of 20


def test_scheduler_rejects_bad_arguments_at_build():
    with pytest.raises(ValueError, match="total_steps"):
        build_poly_scheduler(_optimizer(), total_steps=0, warmup_steps=0)
