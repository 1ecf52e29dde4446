"""``babelseg eval``: per-dataset mIoU in each dataset's own label space, held-out zero-shot."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from babelseg.cli.inference_args import MODE_EPILOG, add_inference_arguments, inference_options

if TYPE_CHECKING:
    from babelseg.inference.windows import InferenceOptions

HELP = "Evaluate a trained model on every declared dataset (held-out ones zero-shot)."
EPILOG = (
    """examples:
  babelseg eval --run runs/default
  babelseg eval --checkpoint runs/default/ckpt_0002000 --datasets citylane,nightdrive
  babelseg eval --run runs/default --data other/datasets.yaml --out other_metrics.json
  babelseg eval --run runs/default --mode slide --window 256 --stride 192 --flip

"""
    + MODE_EPILOG
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", metavar="RUN_DIR", help="run directory (uses its latest checkpoint)")
    src.add_argument("--checkpoint", metavar="CKPT", help="a checkpoint folder")
    p.add_argument("--data", metavar="DATASETS.yaml", help="declarations (default: the run's)")
    p.add_argument("--datasets", help="comma-separated dataset names (default: all declared)")
    p.add_argument("--split", default=None, help="split to score (default: the run's eval split)")
    p.add_argument("--out", metavar="metrics.json", help="where to write the metrics JSON")
    p.add_argument("--max-images", type=int, default=None, help="score at most N images each")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    add_inference_arguments(p)


def evaluate_and_report(
    *,
    run_or_ckpt: str | Path,
    out: str | Path | None,
    data: str | None = None,
    datasets: list[str] | None = None,
    split: str | None = None,
    max_images: int | None = None,
    device: str = "cpu",
    options: InferenceOptions | None = None,
) -> dict:
    """Evaluate, print the table, write ``out``; returns the metrics mapping.

    ``options`` selects the inference mode (slide, resize, flip, scales); None = whole image.
    """
    from babelseg.data.declaration import load_declarations
    from babelseg.data.image_limits import set_max_image_pixels
    from babelseg.evaluation.report import format_table, write_metrics_json
    from babelseg.evaluation.runner import evaluate_datasets
    from babelseg.inference.predictor import Predictor

    predictor = Predictor.from_checkpoint(run_or_ckpt, device=device)
    set_max_image_pixels(predictor.cfg.data.max_image_pixels)  # the run's image limit
    decls = load_declarations(data or predictor.cfg.data.datasets_yaml)
    names = datasets or list(predictor.cfg.data.eval) or list(decls)
    metrics = evaluate_datasets(
        predictor,
        decls,
        names,
        split=split or predictor.cfg.data.eval_split,
        max_images=max_images,
        options=options,
    )
    print(format_table(metrics))
    if out is not None:
        write_metrics_json(Path(out), metrics)
        print(f"metrics written to {out}")
    return metrics


def run(args: argparse.Namespace) -> int:
    source = args.run or args.checkpoint
    out = args.out
    if out is None:
        out = str(Path(args.run) / "metrics.json") if args.run else "metrics.json"
    names = [n.strip() for n in args.datasets.split(",")] if args.datasets else None
    evaluate_and_report(
        run_or_ckpt=source,
        out=out,
        data=args.data,
        datasets=names,
        split=args.split,
        max_images=args.max_images,
        device=args.device,
        options=inference_options(args),
    )
    return 0
