"""``babelseg bench``: training and inference speed of a config on this device, the step split
into its parts, model FLOPs, the measured matmul peak, MFU and the host crossings per step."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "Measure a config's training step and inference on this device (images/s, split, MFU)."
EPILOG = """examples:
  babelseg bench configs/lmseg.yaml
  babelseg bench configs/lmseg.yaml --device cuda --shape r50-512 train.amp=true --json bench.json
  babelseg bench configs/lmseg.yaml --steps 2 labels.encoder=hash recipe.lmseg.prompt_length=0

The run is the one `babelseg train CONFIG` builds (DataLoader workers, recipe, optimizer,
autocast), in a temporary run folder. The split synchronises the device around each part;
the training images/s come from steps run without those waits. --shape tiny is the CPU
benchmark's shape (tiny backbone, 128 px, batch 8); --shape r50-512 is Mask2Former's ResNet-50
shape (512 px, batch 8, 100 queries, 9 decoder layers, 12,544 points; slow on a CPU).
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="run config YAML (see configs/)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. data.num_workers=4")
    p.add_argument("--device", choices=("cpu", "cuda"), help="overrides train.device")
    p.add_argument(
        "--shape",
        choices=("config", "tiny", "r50-512"),
        default="config",
        help="model and batch shape (default: the config's own)",
    )
    p.add_argument("--steps", type=int, default=5, help="timed steps of each kind (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")


def run(args: argparse.Namespace) -> int:
    from babelseg.engine.bench import bench, format_table

    result = bench(
        args.config,
        list(args.overrides),
        shape=args.shape,
        device=args.device,
        steps=args.steps,
        warmup=args.warmup,
    )
    print(format_table(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0
