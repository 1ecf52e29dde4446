"""Ablations of the mask-classification recipes on SynthWorld under one fixed budget, and the
speed of ``lmseg`` against transformers' Mask2Former.

Every row trains the same number of steps (batch 8) from its config and is scored on the val
splits (at most ``--max-images`` images per dataset) in each dataset's own label space: mIoU for
semantic datasets, PQ (and mIoU) for panoptic ones, mask AP for ``open_boxes`` against its hidden
val masks; ``night_drive`` and ``living_zero`` are held out (zero-shot).

Rows (LMSeg Tables 6-7, DaTaSeg Table 2 and the MERGE design):

- ``lmseg``: configs/lmseg.yaml (category-guided decoding + dataset-aware augmentation);
- ``lmseg -CGD``: ``recipe.lmseg.category_guided=false``;
- ``lmseg -DAA``: ``data.dataset_augmentation=false data.shared_augmentation=union`` (LMSeg's
  baseline: every dataset ONE shared pipeline, the union of the datasets' own; before issue 13
  this row used the crop-only default pipeline);
- ``dataseg``: configs/dataseg.yaml (MERGE, the four mask datasets + boxes-only open_boxes);
- ``dataseg -MERGE``: ``recipe.dataseg.merge=false``;
- ``dataseg open_boxes only``: ``data.train=[open_boxes]`` (weak supervision alone).

Then the training-step and inference times of lmseg and Mask2Former at the same sizes
(``mask_speed.py``). Writes benchmarks/results/mask_recipes.{md,json}.

    python benchmarks/mask_recipes.py            # the full run (~25 min on 2 loaded cores)
    PYTHONPATH=. python benchmarks/mask_recipes.py   # when babelseg is not installed
    python benchmarks/mask_recipes.py --quick    # a 2-minute smoke run (numbers meaningless)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mask_speed import speed_comparison  # noqa: E402

from babelseg.data.declaration import load_declarations  # noqa: E402
from babelseg.engine.config import load_config  # noqa: E402
from babelseg.engine.trainer import train  # noqa: E402
from babelseg.evaluation.runner import evaluate_datasets  # noqa: E402
from babelseg.inference.predictor import Predictor  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
EVAL = [
    "metro_drive",
    "vista_roads",
    "home_scenes",
    "pascal_objects",
    "open_boxes",
    "night_drive",
    "living_zero",
]
ROWS: list[tuple[str, str, list[str]]] = [
    ("lmseg", "configs/lmseg.yaml", []),
    ("lmseg -CGD", "configs/lmseg.yaml", ["recipe.lmseg.category_guided=false"]),
    (
        "lmseg -DAA",
        "configs/lmseg.yaml",
        ["data.dataset_augmentation=false", "data.shared_augmentation=union"],
    ),
    ("dataseg", "configs/dataseg.yaml", []),
    ("dataseg -MERGE", "configs/dataseg.yaml", ["recipe.dataseg.merge=false"]),
    ("dataseg open_boxes only", "configs/dataseg.yaml", ["data.train=[open_boxes]"]),
]
COLUMNS: list[tuple[str, str, str]] = [
    ("metro_drive", "mIoU", "metro_drive mIoU"),
    ("vista_roads", "PQ", "vista_roads PQ"),
    ("vista_roads", "mIoU", "vista_roads mIoU"),
    ("home_scenes", "mIoU", "home_scenes mIoU"),
    ("pascal_objects", "mIoU", "pascal_objects mIoU"),
    ("open_boxes", "AP", "open_boxes mask AP"),
    ("night_drive", "mIoU", "night_drive mIoU (held out)"),
    ("living_zero", "PQ", "living_zero PQ (held out)"),
]


def run_row(
    name: str,
    config: str,
    overrides: list[str],
    *,
    steps: int,
    sw: Path,
    work: Path,
    max_images: int,
) -> dict:
    """Train one row and score it."""
    slug = name.replace(" ", "_").replace("-", "no_")
    cfg = load_config(
        config,
        [
            *overrides,
            f"run_dir={work / slug}",
            f"data.datasets_yaml={sw / 'datasets.yaml'}",
            f"train.steps={steps}",
            f"train.warmup_steps={min(100, steps // 5)}",
            f"train.checkpoint_every={steps}",
            "train.eval_at_end=false",
            f"train.log_every={max(1, steps // 10)}",
            "train.threads=1",
        ],
    )
    start = time.perf_counter()
    result = train(cfg, show_progress=False, overwrite=True)
    seconds = time.perf_counter() - start
    decls = load_declarations(cfg.data.datasets_yaml)
    start = time.perf_counter()
    metrics = evaluate_datasets(
        Predictor.from_checkpoint(cfg.run_dir),
        decls,
        EVAL,
        max_images=max_images,
        show_progress=False,
    )
    return {
        "config": config,
        "overrides": overrides,
        "train_datasets": list(cfg.data.train),
        "steps": steps,
        "train_seconds": seconds,
        "eval_seconds": time.perf_counter() - start,
        "final_loss": result.final_loss,
        "metrics": metrics,
    }


def _cell(row: dict, dataset: str, metric: str) -> str:
    entry = row["metrics"]["datasets"].get(dataset, {})
    value = entry.get(metric)
    return "-" if value is None else f"{value:.1f}"


def markdown(out: dict, command: str) -> str:
    rows, speed = out["rows"], out["speed"]
    steps = next(iter(rows.values()))["steps"] if rows else 0
    lines = [
        "# Mask-classification recipes: ablations and speed",
        "",
        f"Command: `{command}` ({out['wall_minutes']:.1f} min in all; load average "
        f"{out['load_before']:.1f} before, {out['load_after']:.1f} after, on 2 CPU cores shared "
        "with other jobs).",
        "",
        f"## Ablations ({steps} steps of batch 8 each, the same for every row)",
        "",
        "Scores (%) on the val splits, at most "
        f"{out['max_images']} images per dataset, each in its own label space. mask AP on "
        "open_boxes is scored against the hidden val masks (the training split has boxes only); "
        "lmseg never trains on open_boxes, so its AP there is zero-shot. One seed per row: at "
        "this budget differences of a few points are within run-to-run noise. The rows share "
        "the total steps, so `dataseg open_boxes only` trains open_boxes on all of them, the "
        "other dataseg rows on about a fifth (one dataset per step, uniform ratios).",
        "",
        "| row | trained on | " + " | ".join(c[2] for c in COLUMNS) + " | mean mIoU | train s |",
        "|---|---|" + "---|" * (len(COLUMNS) + 2),
    ]
    for name, row in rows.items():
        trained = ", ".join(row["train_datasets"])
        cells = " | ".join(_cell(row, d, m) for d, m, _ in COLUMNS)
        mean = row["metrics"].get("mean_mIoU")
        mean_s = "-" if mean is None else f"{mean:.1f}"
        lines.append(f"| {name} | {trained} | {cells} | {mean_s} | {row['train_seconds']:.0f} |")
    lines += [
        "",
        "## Speed: lmseg vs transformers Mask2FormerForUniversalSegmentation",
        "",
        f"Batch {speed['batch']} of {speed['size']}x{speed['size']} images, {speed['num_queries']} "
        f"queries, {speed['decoder_layers']} decoder layers, hidden size {speed['hidden']}, "
        f"{speed['num_points']} sampled points per mask, the tiny backbone's depth and widths "
        "(Mask2Former: transformers ResNetConfig, basic blocks, same stage depths and widths; "
        "its deformable-attention pixel decoder at 1 encoder layer), "
        f"{speed['threads']} thread(s); medians of {len(speed['ours_step_ms_all'])} interleaved "
        "repeats (ms). Training step = forward + loss (matching included) + backward; "
        "inference = forward without gradients.",
        "",
        "| | lmseg (ours) | Mask2Former | Mask2Former / ours |",
        "|---|---|---|---|",
        f"| training step | {speed['ours_step_ms_median']:.0f} | "
        f"{speed['m2f_step_ms_median']:.0f} | {speed['step_ratio_m2f_over_ours']:.2f} |",
        f"| inference | {speed['ours_inf_ms_median']:.0f} | {speed['m2f_inf_ms_median']:.0f} | "
        f"{speed['inference_ratio_m2f_over_ours']:.2f} |",
        f"| parameters (M) | {speed['params_ours_M']:.2f} | {speed['params_mask2former_M']:.2f} "
        "| |",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sw", default="sw", help="SynthWorld folder (default: sw)")
    ap.add_argument("--steps", type=int, default=250, help="training steps of every row")
    ap.add_argument("--max-images", type=int, default=30, help="val images per dataset")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats of the speed test")
    ap.add_argument("--work", default="runs/bench_mask", help="run directories")
    ap.add_argument("--quick", action="store_true", help="2-minute smoke run")
    ap.add_argument("--out", default=str(RESULTS), help="where mask_recipes.{md,json} go")
    args = ap.parse_args()
    extra: list[str] = []
    if args.quick:  # checks the pipeline end to end; the numbers mean nothing
        args.steps, args.max_images, args.repeats = 2, 1, 1
        extra = ["labels.encoder=hash"]
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # one thread: on a CPU shared with other jobs, two OpenMP threads mostly wait for each
    # other (timings then measure the load, not the code)
    torch.set_num_threads(1)
    command = "python benchmarks/mask_recipes.py" + (" --quick" if args.quick else "")
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    speed = speed_comparison(repeats=args.repeats)
    print("speed:", {k: v for k, v in speed.items() if not k.endswith("_all")}, flush=True)
    rows = {}
    for name, config, overrides in ROWS:
        rows[name] = run_row(
            name,
            config,
            [*overrides, *extra],
            steps=args.steps,
            sw=Path(args.sw),
            work=Path(args.work),
            max_images=args.max_images,
        )
        got = {f"{d} {m}": _cell(rows[name], d, m) for d, m, _ in COLUMNS}
        print(name, f"{rows[name]['train_seconds']:.0f}s", got, flush=True)
    out = {
        "steps": args.steps,
        "max_images": args.max_images,
        "rows": rows,
        "speed": speed,
        "wall_minutes": (time.perf_counter() - start) / 60,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "quick": args.quick,
    }
    dest = Path(args.out)
    dest.mkdir(parents=True, exist_ok=True)
    stem = "mask_recipes_quick" if args.quick else "mask_recipes"
    (dest / f"{stem}.json").write_text(json.dumps(out, indent=1) + "\n")
    text = markdown(out, command)  # re-render a saved run: markdown(json.load(f), command)
    (dest / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
