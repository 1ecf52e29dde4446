"""The real trainer's step against the isolated model step, and what the step reads back.

Builds a ``Trainer`` for a config (its loader with its workers, its recipe, optimizer and
normalisers) and times, interleaved in blocks, two loops over the same parts:

- *model step*: one batch already on the device, repeated: forward, loss (matching included),
  backward, optimizer step;
- *trainer step*: the same, but each step takes the next batch from the trainer's DataLoader and
  moves it to the device (what ``Trainer.train`` does per step, minus logging and checkpoints).

``overhead = trainer step / model step - 1`` is the data-and-target cost the trainer adds. Then
one trainer step runs under ``torch.profiler`` phase by phase (transfer, normalisers, forward,
loss, backward, optimizer) and the calls that read a tensor back to the host
(``aten::_local_scalar_dense``: ``.item()``, ``float(t)``, ``bool(t)``), the copies and
conversions (``aten::_to_copy``, ``aten::copy_``) and, on CUDA, ``cudaMemcpyAsync`` and
``cudaStreamSynchronize`` are counted. On the CPU a device crossing is not a copy, so read the
CPU counts as upper bounds of what becomes a transfer on a GPU (most are dtype conversions). It
imports only what every version of the project has, so it measures the tree on ``PYTHONPATH``
(before/after a change).

    python benchmarks/trainer_step.py --data sw/datasets.yaml [--config configs/lmseg.yaml]
        [--blocks 5] [--steps 4] [--device cpu] [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter

import torch
from torch.profiler import ProfilerActivity, profile

from babelseg.engine.config import load_config
from babelseg.engine.trainer import Trainer

COUNTED = (
    "aten::_local_scalar_dense",
    "aten::_to_copy",
    "aten::copy_",
    "aten::nonzero",
    "cudaMemcpyAsync",
    "cudaStreamSynchronize",
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _step(trainer: Trainer, batch) -> None:
    """Forward, loss, backward and optimizer step as ``Trainer.train`` does them."""
    normalisers = trainer._normalisers(batch)
    texts = trainer._step_texts(batch)
    output = trainer._forward(batch, texts)
    result = trainer.recipe.loss(output, batch, texts, normalisers=normalisers)
    trainer.optimizer.zero_grad(set_to_none=True)
    result.total.backward()
    trainer.optimizer.step()


COUNTS: dict[str, dict[str, int]] = {}


def _counted(phases: dict, name: str, device: torch.device):
    """Run ``phases[name]`` under the profiler; record its counted operators in ``COUNTS``."""
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        out = phases[name]()
        _sync(device)
    COUNTS[name] = dict(Counter(e.name for e in prof.events() if e.name in COUNTED))
    return out


def measure(config: str, overrides: list[str], *, blocks: int, steps: int) -> dict:
    """Median ms of the model step and the trainer step, and per-step operator counts."""
    cfg = load_config(config, overrides)
    trainer = Trainer(cfg, show_progress=False)
    trainer._setup()
    trainer._set_train_mode(True)
    device = trainer.device
    data = iter(trainer.loader)
    fixed = next(data).to(device)

    def timed(fetch: bool) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            batch = next(data).to(device, non_blocking=True) if fetch else fixed
            _step(trainer, batch)
        _sync(device)
        return (time.perf_counter() - start) * 1000 / steps

    timed(True), timed(False)  # warm-up: workers started, allocator and caches filled
    model_ms, trainer_ms = [], []
    for _ in range(blocks):  # interleaved so that load changes hit both alike
        model_ms.append(timed(False))
        trainer_ms.append(timed(True))
    batch = next(data)
    phases = {"transfer": lambda: batch.to(device, non_blocking=True)}
    moved = _counted(phases, "transfer", device)
    phases["normalisers"] = lambda: trainer._normalisers(moved)
    normalisers = _counted(phases, "normalisers", device)
    texts = trainer._step_texts(moved)
    phases["forward"] = lambda: trainer._forward(moved, texts)
    output = _counted(phases, "forward", device)
    phases["loss"] = lambda: trainer.recipe.loss(output, moved, texts, normalisers=normalisers)
    result = _counted(phases, "loss", device)
    trainer.optimizer.zero_grad(set_to_none=True)
    phases["backward"] = lambda: result.total.backward()
    _counted(phases, "backward", device)
    phases["optimizer"] = trainer.optimizer.step
    _counted(phases, "optimizer", device)
    trainer.close()
    model, real = statistics.median(model_ms), statistics.median(trainer_ms)
    return {
        "config": config,
        "overrides": overrides,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "model_step_ms_median": round(model, 1),
        "trainer_step_ms_median": round(real, 1),
        "overhead_share_of_model_step": round(real / model - 1, 3),
        "model_step_ms_all": [round(v, 1) for v in model_ms],
        "trainer_step_ms_all": [round(v, 1) for v in trainer_ms],
        "per_phase_counts": COUNTS,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", default="configs/lmseg.yaml")
    ap.add_argument("--data", required=True, help="datasets.yaml (babelseg synth --out DIR)")
    ap.add_argument("--blocks", type=int, default=5, help="interleaved blocks per loop")
    ap.add_argument("--steps", type=int, default=4, help="steps per block")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = ap.parse_args()
    overrides = [
        f"data.datasets_yaml={args.data}",
        "labels.encoder=hash",
        f"train.device={args.device}",
        f"train.threads={args.threads}",
        "run_dir=/tmp/babelseg_trainer_step",
        *args.overrides,
    ]
    result = measure(args.config, overrides, blocks=args.blocks, steps=args.steps)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
