"""The sentence recipe's heterogeneous loss on SynthWorld, like SentenceLabels.txt Table 3.

Rows (one fixed budget and seed each):

- ``HD``: the clean datasets only (metro_drive, vista_roads, pascal_objects), L_HD;
- ``HD + noisy (L_HD)``: plus home_scenes (noisy train masks) under plain L_HD;
- ``HD + noisy (L_LD)``: plus home_scenes under L_LD (30% highest-loss pixels dropped per image);
- ``HD + boxes (L_WD)``: plus open_boxes (boxes only) under L_WD (text-embedding teacher);
- ``HD + noisy (L_LD) + boxes (L_WD)``: everything.

SynthWorld's home_scenes val masks are clean (noise is applied to train only), so its column
measures what the noisy masks taught. Writes benchmarks/results/sentence.{json,md}.

    python benchmarks/sentence.py --sw sw [--steps 600] [--quick]
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
CLEAN = ["metro_drive", "vista_roads", "pascal_objects"]
ROWS = {
    "HD": (CLEAN, []),
    "HD + noisy (L_HD)": ([*CLEAN, "home_scenes"], ["recipe.noisy_drop_fraction=0.0"]),
    "HD + noisy (L_LD)": ([*CLEAN, "home_scenes"], ["recipe.noisy_drop_fraction=0.3"]),
    "HD + boxes (L_WD)": ([*CLEAN, "open_boxes"], ["recipe.box_loss_weight=1.0"]),
    "HD + noisy (L_LD) + boxes (L_WD)": (
        [*CLEAN, "home_scenes", "open_boxes"],
        ["recipe.noisy_drop_fraction=0.3", "recipe.box_loss_weight=1.0"],
    ),
    "HD + boxes (L_WD, weight 0.05)": ([*CLEAN, "open_boxes"], ["recipe.box_loss_weight=0.05"]),
}
EVAL = [*CLEAN, "home_scenes", "night_drive", "living_zero"]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sw", default="sw", help="SynthWorld folder (babelseg synth --out DIR)")
    ap.add_argument("--config", default="configs/default.yaml")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--quick", action="store_true", help="smoke run: 20 steps, 10 eval images")
    ap.add_argument("--work", default="runs/bench_sentence")
    ap.add_argument("--only", help="run only rows containing this text; keep the others' results")
    args = ap.parse_args()
    steps = 20 if args.quick else args.steps
    max_images = 10 if args.quick else None
    decls = load_declarations(Path(args.sw) / "datasets.yaml")
    rows = {}
    old = RESULTS / "sentence.json"
    if args.only and old.is_file():
        rows.update(json.loads(old.read_text())["rows"])
    for row, (names, overrides) in ROWS.items():
        if args.only and args.only not in row:
            continue
        run_dir = Path(args.work) / row.replace(" ", "_").replace("(", "").replace(")", "")
        cfg = load_config(
            args.config,
            [
                f"run_dir={run_dir}",
                f"data.datasets_yaml={Path(args.sw) / 'datasets.yaml'}",
                f"data.train=[{', '.join(names)}]",
                f"train.steps={steps}",
                "train.checkpoint_every=1000000",
                *overrides,
            ],
        )
        t0 = time.perf_counter()
        train(cfg, show_progress=False, overwrite=True)
        seconds = time.perf_counter() - t0
        metrics = evaluate_datasets(
            Predictor.from_checkpoint(run_dir),
            decls,
            EVAL,
            max_images=max_images,
            show_progress=False,
        )
        rows[row] = {
            "train": names,
            "seconds": seconds,
            **{n: metrics["datasets"][n]["mIoU"] for n in EVAL},
        }
        print(row, {k: v for k, v in rows[row].items() if k != "train"}, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"steps": steps, "config": args.config, "quick": args.quick, "seed": 0}
    (RESULTS / "sentence.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    head = "| training data | " + " | ".join(EVAL) + " | train s |"
    lines = [
        "# sentence recipe: heterogeneous loss on SynthWorld (SentenceLabels Table 3 shape)",
        "",
        f"mIoU (%) on val, {steps} steps per row, batch 8, seed 0, default config otherwise. "
        "night_drive and living_zero are held out (zero-shot). Command: "
        f"`python benchmarks/sentence.py --steps {steps}`.",
        "",
        head,
        "|---" * (len(EVAL) + 2) + "|",
    ]
    for row in [r for r in ROWS if r in rows]:
        r = rows[row]
        cells = " | ".join(f"{r[n]:.1f}" for n in EVAL)
        lines.append(f"| {row} | {cells} | {r['seconds']:.0f} |")
    (RESULTS / "sentence.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
