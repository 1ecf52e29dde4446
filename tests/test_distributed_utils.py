"""Distributed helpers: one-process defaults, torchrun env checks, a real 2-process gloo job."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from torch import nn

from babelseg.engine.distributed import (
    all_reduce_mean,
    all_reduce_sum_,
    barrier,
    broadcast_object,
    cleanup,
    init_distributed,
    unwrap_model,
    wrap_ddp,
)

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def clean_env(monkeypatch):
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_single_process_is_a_no_op(clean_env):
    ctx = init_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main) == (0, 1, 0, True)
    assert ctx.device == torch.device("cpu") and not ctx.is_distributed
    t = torch.tensor([1, 2])
    mean = all_reduce_mean(t)
    assert mean.dtype == torch.float32 and torch.equal(mean, torch.tensor([1.0, 2.0]))
    s = torch.tensor([3.0])
    assert all_reduce_sum_(s) is s and s.item() == 3.0
    assert broadcast_object({"a": 1}) == {"a": 1}
    model = nn.Linear(2, 2)
    assert wrap_ddp(model, ctx) is model
    assert unwrap_model(nn.DataParallel(model)) is model
    barrier()
    cleanup()


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"WORLD_SIZE": "2", "RANK": "0"}, "MASTER_ADDR"),
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two'"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK < WORLD_SIZE"),
    ],
)
def test_bad_torchrun_environment(clean_env, env, match):
    for name, value in env.items():
        clean_env.setenv(name, value)
    with pytest.raises(ValueError, match=match):
        init_distributed("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_requested_without_cuda(clean_env):
    with pytest.raises(ValueError, match="CUDA is not available"):
        init_distributed("cuda")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(4, 3, generator=g), torch.randn(4, 2, generator=g)


def _model() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(3, 2)


def _worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    """One rank of the gloo job (module-level so spawned processes can import it)."""
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    ctx = init_distributed("cpu", timeout_s=60)
    try:
        mean = all_reduce_mean(torch.tensor([rank + 1.0, 2.0 * (rank + 1)]))
        total = all_reduce_sum_(torch.tensor([rank + 1.0]))
        obj = broadcast_object({"seed": 7} if rank == 0 else None)
        model = _model()
        ddp = wrap_ddp(model, ctx)
        x, y = _data()
        half = slice(2 * rank, 2 * rank + 2)  # this rank's half of the batch
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        nn.functional.mse_loss(ddp(x[half]), y[half]).backward()  # DDP averages the gradients
        opt.step()
        barrier()
        out = Path(out_dir)
        tensors = {"mean": mean, "total": total, **unwrap_model(ddp).state_dict()}
        save_file({k: v.detach().contiguous() for k, v in tensors.items()}, out / f"{rank}.st")
        info = {"rank": ctx.rank, "world": ctx.world_size, "main": ctx.is_main, "obj": obj}
        (out / f"{rank}.json").write_text(json.dumps(info))
    finally:
        cleanup()


def test_two_gloo_processes_match_single_process(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)

    model = _model()
    x, y = _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    nn.functional.mse_loss(model(x), y).backward()  # the whole batch in one process
    opt.step()

    for rank in (0, 1):
        got = load_file(tmp_path / f"{rank}.st")
        info = json.loads((tmp_path / f"{rank}.json").read_text())
        assert info == {"rank": rank, "world": 2, "main": rank == 0, "obj": {"seed": 7}}
        assert torch.equal(got["mean"], torch.tensor([1.5, 3.0]))
        assert torch.equal(got["total"], torch.tensor([3.0]))
        torch.testing.assert_close(got["weight"], model.weight.detach(), rtol=0, atol=1e-6)
        torch.testing.assert_close(got["bias"], model.bias.detach(), rtol=0, atol=1e-6)
    assert torch.equal(
        load_file(tmp_path / "0.st")["weight"], load_file(tmp_path / "1.st")["weight"]
    )
