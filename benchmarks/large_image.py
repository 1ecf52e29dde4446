"""Time and peak memory of predicting one 8000 x 6000 image with sliding windows on the CPU.
Not a test: writes benchmarks/results/large_image.{json,md}.

    python benchmarks/large_image.py                      # trains a short default-model run first
    python benchmarks/large_image.py --run runs/default   # or uses a trained run

Without ``--run`` it generates a tiny SynthWorld and trains ``configs/default.yaml`` (the
default model: tiny backbone, 64-d decoder, MiniLM labels) for ``--steps`` steps: time and memory
depend on the architecture, not on how long it trained. The image is a mosaic of SynthWorld
images resized to ``--size``, saved as JPEG and predicted from its path, so decoding counts.
Each mode runs in a fresh child process, whose peak resident set size (``ru_maxrss``, which
includes Python, torch and the model) is the figure reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def child(args: argparse.Namespace) -> None:
    """Load, predict one image, print one JSON line (runs in a fresh process)."""
    import torch

    import babelseg

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model = babelseg.load(args.run)
    after_load = _rss_mb()
    t1 = time.perf_counter()
    result = model.predict(
        args.image,
        dataset=args.dataset or model.datasets[0],
        mode=args.mode,
        window=args.window,
        stride=args.stride,
        batch_size=args.batch_size,
    )
    t2 = time.perf_counter()
    print(
        json.dumps(
            {
                "mode": args.mode,
                "window": args.window,
                "stride": args.stride,
                "batch_size": args.batch_size,
                "height": int(result.label_map.shape[0]),
                "width": int(result.label_map.shape[1]),
                "classes_present": len(result.present),
                "load_s": round(t1 - t0, 2),
                "predict_s": round(t2 - t1, 2),
                "rss_after_load_mb": round(after_load, 1),
                "peak_rss_mb": round(_rss_mb(), 1),
            }
        )
    )


def train_short_run(work: Path, steps: int) -> Path:
    """A short run of configs/default.yaml on a tiny SynthWorld."""
    sw = work / "sw"
    subprocess.run(
        [sys.executable, "-m", "babelseg", "synth", "--out", str(sw), "--scale", "tiny"],
        check=True,
    )
    run = work / "run"
    subprocess.run(
        [
            sys.executable, "-m", "babelseg", "train", str(ROOT / "configs" / "default.yaml"),
            f"data.datasets_yaml={sw / 'datasets.yaml'}", f"run_dir={run}",
            f"train.steps={steps}", "train.eval_at_end=false", "data.num_workers=0",
        ],
        check=True,
    )  # fmt: skip
    return run


def mosaic(path: Path, size: tuple[int, int], sources: list[Path]) -> None:
    """A ``W x H`` JPEG tiled from ``sources`` (8 x 8 tiles)."""
    width, height = size
    tiles = [Image.open(p).convert("RGB") for p in sources[:16]]
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    th, tw = -(-height // 8), -(-width // 8)
    for i in range(8):
        for j in range(8):
            tile = np.asarray(tiles[(i * 8 + j) % len(tiles)].resize((tw, th)))
            part = canvas[i * th : (i + 1) * th, j * tw : (j + 1) * tw]
            part[:] = tile[: part.shape[0], : part.shape[1]]
    Image.fromarray(canvas).save(path, quality=90)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--run", help="a trained run (default: train a short default-model run)")
    ap.add_argument("--dataset", help="vocabulary: a dataset of the run (default: the first)")
    ap.add_argument("--size", default="8000x6000", help="image W x H (default 8000x6000)")
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--stride", type=int, default=384)
    ap.add_argument("--batch-size", type=int, default=4, help="windows per forward pass")
    ap.add_argument("--modes", default="slide", help='comma-separated, e.g. "slide,resize"')
    ap.add_argument("--steps", type=int, default=20, help="training steps without --run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--image", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="babelseg_large_"))
    run = Path(args.run) if args.run else train_short_run(work, args.steps)
    width, height = (int(v) for v in args.size.lower().split("x"))
    sources = sorted((work / "sw").glob("*/images/val/*")) if not args.run else []
    if not sources:
        sources = [ROOT / "docs" / "prediction.png"]
    image = work / "large.jpg"
    mosaic(image, (width, height), sources)
    rows = []
    for mode in args.modes.split(","):
        cmd = [
            sys.executable, __file__, "--child", "--run", str(run), "--image", str(image),
            "--mode", mode, "--window", str(args.window), "--stride", str(args.stride),
            "--batch-size", str(args.batch_size), "--threads", str(args.threads),
        ]  # fmt: skip
        if args.dataset:
            cmd += ["--dataset", args.dataset]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        print(row)
        rows.append(row)
    machine = {
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "run": str(run) if args.run else f"configs/default.yaml, {args.steps} steps",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "large_image.json").write_text(
        json.dumps({"machine": machine, "rows": rows}, indent=2)
    )
    lines = [
        f"# Large image ({width} x {height}), CPU, {args.threads} threads",
        "",
        f"Load average when measured: {machine['load_average']} on {os.cpu_count()} cores "
        "(timings on a shared machine are noisy; peak memory is not).",
        "",
        "| mode | window / stride | predict (s) | RSS after load (MB) | peak RSS (MB) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r['window']} / {r['stride']} | {r['predict_s']} | "
            f"{r['rss_after_load_mb']} | {r['peak_rss_mb']} |"
        )
    (RESULTS / "large_image.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'large_image.md'}")


if __name__ == "__main__":
    main()
