"""``train.compile=true``: the network's forward runs through ``torch.compile`` and trains."""

import math
import shutil

import pytest
import torch
import yaml

from babelseg.engine.config import load_config
from babelseg.engine.trainer import train


def test_compiled_lmseg_trains_two_steps_to_a_finite_loss(tiny_run_config):
    # aot_eager captures the graphs with dynamo and AOT autograd like inductor does, without
    # its C++ code generation (minutes of compiler time on two CPU cores).
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler on this machine: torch.compile cannot build CPU kernels")
    path = tiny_run_config(
        "compiled",
        recipe={"name": "lmseg", "lmseg": {"prompt_length": 0}},
        train={
            "steps": 2,
            "checkpoint_every": 2,
            "log_every": 1,
            "warmup_steps": 1,
            "compile": True,
            "compile_backend": "aot_eager",
            "eval_at_end": False,
        },
    )
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    result = train(load_config(path), show_progress=False)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # dynamo captured graphs
    assert result.steps == 2
    assert math.isfinite(result.final_loss) and result.final_loss > 0
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert saved["train"]["compile"] is True


def test_unknown_compile_backend_is_refused_by_name(tiny_run_config):
    path = tiny_run_config("bad", train={"compile": True, "compile_backend": "tensorrt"})
    with pytest.raises(ValueError, match="compile_backend='tensorrt'"):
        load_config(path)
