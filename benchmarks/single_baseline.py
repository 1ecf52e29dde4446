"""The `single` baseline: one model per training dataset, the same total steps split across them.

Compare with the main job's multi-dataset run (runs/default/metrics.json). Writes
benchmarks/results/single.{json,md}.

    python benchmarks/single_baseline.py [--total-steps 2400] [--sw sw]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from babelseg.data.declaration import load_declarations
from babelseg.engine.config import load_config
from babelseg.engine.trainer import train
from babelseg.evaluation.runner import evaluate_datasets
from babelseg.inference.predictor import Predictor

RESULTS = Path(__file__).resolve().parent / "results"
TRAIN = ["metro_drive", "vista_roads", "home_scenes", "pascal_objects"]
HELDOUT = ["night_drive", "living_zero"]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", default="configs/default.yaml")
    ap.add_argument("--sw", default="sw")
    ap.add_argument("--total-steps", type=int, default=2400)
    ap.add_argument("--work", default="runs/bench_single")
    args = ap.parse_args()
    data = Path(args.sw) / "datasets.yaml"
    decls = load_declarations(data)
    steps = args.total_steps // len(TRAIN)
    out = {}
    for name in TRAIN:
        cfg = load_config(
            args.config,
            [
                f"run_dir={Path(args.work) / name}",
                f"data.datasets_yaml={data}",
                f"data.train=[{name}]",
                f"train.steps={steps}",
                "train.checkpoint_every=1000000",
            ],
        )
        t0 = time.perf_counter()
        train(cfg, show_progress=False, overwrite=True)
        seconds = time.perf_counter() - t0
        m = evaluate_datasets(
            Predictor.from_checkpoint(cfg.run_dir), decls, [name, *HELDOUT], show_progress=False
        )
        out[name] = {
            "seconds": seconds,
            "steps": steps,
            **{k: v["mIoU"] for k, v in m["datasets"].items()},
        }
        print(name, out[name], flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "single.json").write_text(json.dumps(out, indent=1))
    lines = [
        "# `single` baseline: one model per dataset, same total steps",
        "",
        f"{steps} steps per model ({args.total_steps} in all), default config otherwise. mIoU (%) "
        "on each model's own dataset, and zero-shot on the held-out datasets. Command: "
        f"`python benchmarks/single_baseline.py --total-steps {args.total_steps}`.",
        "",
        "| model trained on | own dataset | " + " | ".join(HELDOUT) + " | train s |",
        "|---|---|" + "---|" * len(HELDOUT) + "---|",
    ]
    for name, r in out.items():
        held = " | ".join(f"{r[h]:.1f}" for h in HELDOUT)
        lines.append(f"| {name} | {r[name]:.1f} | {held} | {r['seconds']:.0f} |")
    (RESULTS / "single.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
