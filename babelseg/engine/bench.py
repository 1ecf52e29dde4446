"""``babelseg bench``: how fast the real trainer's step runs on this device, and why.

The run is the one ``babelseg train CONFIG`` would build (its DataLoader workers, its recipe,
optimizer and autocast), in a temporary run folder. It reports:

- training images/s from steps run as the training loop runs them (one synchronisation at the
  end of each step), and the same steps split into data wait / forward / loss and matching /
  backward / optimizer, the device synchronised around each part (bench mode only);
- inference images/s (the recipe's forward in eval mode, no gradients);
- model FLOPs of one step (``FlopCounterMode``), the matmul peak measured on this device and
  MFU = model FLOP/s / measured peak;
- host-to-device copies and synchronisations of one step (``torch.profiler``).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import asdict

import torch

from babelseg.data.collate import Batch
from babelseg.engine.bench_measures import (
    count_crossings,
    count_flops,
    matmul_peak,
    timed_ms,
)
from babelseg.engine.config import Config, load_config
from babelseg.engine.train_setup import _autocast
from babelseg.engine.trainer import Trainer
from babelseg.recipes.base import forward_kwargs

SHAPES: dict[str, list[str]] = {
    "config": [],
    "tiny": [
        "model.backbone=tiny",
        "data.crop=[128,128]",
        "data.batch_size=8",
    ],
    "r50-512": [  # Mask2Former's published ResNet-50 shape
        "model.backbone=resnet50",
        "model.backbone_kwargs={}",
        "data.crop=[512,512]",
        "data.batch_size=8",
        "model.decoder_dim=256",
        "model.num_queries=100",
        "model.query_layers=9",
        "model.query_heads=8",
        "model.query_ffn_dim=2048",
        "recipe.mask.num_points=12544",
    ],
}
"""``--shape``: overrides applied after the config's own (``config`` keeps the config's)."""

PHASES = ("data_wait", "forward", "loss_matching", "backward", "optimizer")


def bench_config(
    config: str, overrides: list[str], *, shape: str, device: str | None, run_dir: str
) -> Config:
    """The config the bench runs: CONFIG, the shape's overrides, the user's, the device, a
    temporary run folder and no end-of-run evaluation."""
    if shape not in SHAPES:
        raise ValueError(f"--shape {shape!r} is not known; use one of {sorted(SHAPES)}.")
    extra = [f"train.device={device}"] if device else []
    return load_config(
        config,
        [*SHAPES[shape], *overrides, *extra, f"run_dir={run_dir}", "train.eval_at_end=false"],
    )


class _StepParts:
    """The training loop's step cut into its parts, each a callable (bench mode only)."""

    def __init__(self, *, trainer: Trainer):
        self.trainer = trainer
        self.data = iter(trainer.loader)
        self.autocast = lambda: _autocast(trainer.cfg, trainer.device)

    def fetch(self) -> Batch:
        return next(self.data).to(self.trainer.device, non_blocking=True)

    def forward(self, batch: Batch):
        t = self.trainer
        with self.autocast():
            texts = t._step_texts(batch)
            return t._normalisers(batch), texts, t._forward(batch, texts)

    def loss(self, batch: Batch, parts):
        normalisers, texts, output = parts
        with self.autocast():
            return self.trainer.recipe.loss(output, batch, texts, normalisers=normalisers).total

    def backward(self, total: torch.Tensor) -> None:
        t = self.trainer
        t.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if t.cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(t.recipe.parameters(), t.cfg.train.grad_clip)

    def optimize(self) -> None:
        self.trainer.optimizer.step()
        self.trainer.scheduler.step()

    def whole(self) -> None:
        """One step as the training loop runs it, without waits between parts."""
        batch = self.fetch()
        self.backward(self.loss(batch, self.forward(batch)))
        self.optimize()

    def split(self) -> dict[str, float]:
        """One step, each part timed between device synchronisations (ms)."""
        device, out = self.trainer.device, {}
        box: dict[str, object] = {}
        out["data_wait"] = timed_ms(lambda: box.update(batch=self.fetch()), device)
        out["forward"] = timed_ms(lambda: box.update(parts=self.forward(box["batch"])), device)
        out["loss_matching"] = timed_ms(
            lambda: box.update(total=self.loss(box["batch"], box["parts"])), device
        )
        out["backward"] = timed_ms(lambda: self.backward(box["total"]), device)
        out["optimizer"] = timed_ms(self.optimize, device)
        return out

    def model_only(self) -> None:
        """Forward, loss and backward on one batch (what the FLOP counter counts)."""
        batch = self.fetch()
        self.backward(self.loss(batch, self.forward(batch)))
        self.trainer.optimizer.zero_grad(set_to_none=True)

    def inference(self, batch: Batch) -> Callable[[], object]:
        t = self.trainer

        def run() -> None:
            with torch.inference_mode(), self.autocast():
                texts = t.recipe.step_texts({n: t.texts_dev[n] for n in t.train_names})
                per_image = [texts[d] for d in batch.datasets]
                t.recipe(
                    batch.images,
                    **forward_kwargs(t.recipe, texts=per_image, datasets=batch.datasets),
                )

        return run


def _median_split(splits: list[dict[str, float]]) -> dict[str, float]:
    return {p: statistics.median(s[p] for s in splits) for p in PHASES}


def run_bench(cfg: Config, *, steps: int, warmup: int = 2) -> dict:
    """Bench ``cfg``'s training step and inference on ``cfg.train.device``; returns the figures
    (see ``format_table`` for their meaning). ``steps`` timed steps of each kind."""
    if steps < 1 or warmup < 0:
        raise ValueError(f"--steps must be >= 1 and --warmup >= 0, got {steps} and {warmup}.")
    trainer = Trainer(cfg, show_progress=False, overwrite=True)
    try:
        trainer._setup()
        return _measure(trainer, steps=steps, warmup=warmup)
    finally:
        trainer.close()


def _measure(trainer: Trainer, *, steps: int, warmup: int) -> dict:
    device, cfg = trainer.device, trainer.cfg
    parts = _StepParts(trainer=trainer)
    trainer._set_train_mode(True)
    for _ in range(warmup):  # workers started, allocator filled, compiled graphs built
        parts.whole()
    step_ms = [timed_ms(parts.whole, device) for _ in range(steps)]
    split = _median_split([parts.split() for _ in range(steps)])
    crossings = count_crossings(parts.whole, device)
    flops = count_flops(parts.model_only)
    batch = parts.fetch()
    images = int(batch.images.shape[0])
    trainer._set_train_mode(False)
    infer = parts.inference(batch)
    for _ in range(warmup):
        infer()
    infer_ms = statistics.median(timed_ms(infer, device) for _ in range(steps))
    use_bf16 = cfg.train.amp and device.type == "cuda"
    peak = matmul_peak(
        device=device,
        dtype=torch.bfloat16 if use_bf16 else torch.float32,
        size=8192 if device.type == "cuda" else 1024,
    )
    step = statistics.median(step_ms)
    model_flops_per_s = flops / (step / 1000)
    return {
        "config": cfg.to_dict()["recipe"]["name"],
        "device": _device_name(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "batch": images,
        "crop": list(cfg.data.crop),
        "amp_bf16": bool(cfg.train.amp),
        "compile": bool(cfg.train.compile),
        "steps": steps,
        "train_step_ms": step,
        "train_images_per_s": images / (step / 1000),
        "step_split_ms": split,
        "inference_ms": infer_ms,
        "inference_images_per_s": images / (infer_ms / 1000),
        "model_gflop_per_step": flops / 1e9,
        "model_tflop_per_s": model_flops_per_s / 1e12,
        "matmul_peak_tflop_per_s": peak.flops_per_s / 1e12,
        "matmul_peak_dtype": peak.dtype,
        "mfu": model_flops_per_s / peak.flops_per_s,
        "per_step": asdict(crossings),
    }


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


def format_table(result: dict) -> str:
    """The figures as a readable table."""
    split, total = result["step_split_ms"], sum(result["step_split_ms"].values())
    rows = [
        ("device", f"{result['device']}, {result['threads']} threads, torch {result['torch']}"),
        ("batch / crop", f"{result['batch']} x {result['crop'][0]}x{result['crop'][1]}"),
        (
            "training",
            f"{result['train_images_per_s']:.1f} images/s ({result['train_step_ms']:.1f} ms/step)",
        ),
        (
            "inference",
            f"{result['inference_images_per_s']:.1f} images/s "
            f"({result['inference_ms']:.1f} ms/batch)",
        ),
    ]
    rows += [
        (
            f"  {p.replace('_', ' ')}",
            f"{split[p]:.1f} ms ({100 * split[p] / max(total, 1e-9):.0f} %)",
        )
        for p in PHASES
    ]
    crossings = result["per_step"]
    rows += [
        ("model FLOPs / step", f"{result['model_gflop_per_step']:.2f} GFLOP"),
        ("model FLOP/s", f"{result['model_tflop_per_s'] * 1000:.2f} GFLOP/s"),
        (
            "matmul peak",
            f"{result['matmul_peak_tflop_per_s'] * 1000:.1f} GFLOP/s "
            f"({result['matmul_peak_dtype']})",
        ),
        ("MFU", f"{100 * result['mfu']:.2f} %"),
        ("scalar reads / step", str(crossings["scalar_reads"])),
        (
            "copies / step",
            f"{crossings['copies']} ({crossings['non_blocking_copies']} non-blocking)",
        ),
        ("host-to-device / step", str(crossings["host_to_device"])),
        ("synchronisations / step", str(crossings["synchronizations"])),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def bench(
    config: str,
    overrides: list[str],
    *,
    shape: str = "config",
    device: str | None = None,
    steps: int = 5,
    warmup: int = 2,
) -> dict:
    """Library entry point of ``babelseg bench``: build CONFIG's run in a temporary folder,
    measure it, remove the folder."""
    run_dir = tempfile.mkdtemp(prefix="babelseg_bench_")
    try:
        cfg = bench_config(config, overrides, shape=shape, device=device, run_dir=run_dir)
        return run_bench(cfg, steps=steps, warmup=warmup)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
