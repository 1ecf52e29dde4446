"""``babelseg train``: train a recipe on several datasets at once."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HELP = "Train one model on several datasets (each supervised in its own label space)."
EPILOG = """examples:
  babelseg train configs/default.yaml
  babelseg train configs/default.yaml train.steps=200 run_dir=runs/short
  babelseg train --resume runs/default               # continue a killed run
  babelseg train configs/default.yaml --overwrite    # start over: deletes runs/default first
  torchrun --nproc_per_node=2 -m babelseg train configs/default.yaml   # distributed (DDP)
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="run config YAML (see configs/)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.steps=100")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue from RUN_DIR's last checkpoint")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in a run_dir that holds an earlier run, deleting that run first",
    )
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation at the end")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")


def run(args: argparse.Namespace) -> int:
    from babelseg.engine.config import load_config
    from babelseg.engine.divergence import TrainingDiverged
    from babelseg.engine.trainer import train

    overrides = list(args.overrides)
    config = args.config
    if config and "=" in config and not Path(config).exists():
        overrides.insert(0, config)
        config = None
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in RUN_DIR; --overwrite deletes it: pick one.")
    if args.resume:
        run_dir = Path(args.resume)
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise FileNotFoundError(f"--resume: {saved} not found; is {run_dir} a run directory?")
        cfg = load_config(saved, [*overrides, f"run_dir={run_dir}"])
    else:
        if config is None:
            raise ValueError("Give a config file, e.g. `babelseg train configs/default.yaml`.")
        cfg = load_config(config, overrides)
    try:
        result = train(cfg, resume=bool(args.resume), overwrite=args.overwrite)
    except TrainingDiverged as e:  # a finding, not a crash: one message, no traceback
        if args.debug:
            raise
        print(f"babelseg train: error: {e}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return 0
    print(f"trained {result.steps} steps; final loss {result.final_loss:.4f}")
    print(f"run directory: {result.run_dir}  (checkpoint: {result.last_checkpoint})")
    if cfg.train.eval_at_end and not args.no_eval:
        from babelseg.cli.eval_cmd import evaluate_and_report

        evaluate_and_report(
            run_or_ckpt=result.run_dir, out=result.run_dir / "metrics.json", device=cfg.train.device
        )
    return 0
