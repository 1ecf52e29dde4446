"""``babelseg score``: score prediction files against ground truth, without a model."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Score predictions against ground truth (no model needed): mIoU, PQ or mask AP."
EPILOG = """examples:
  babelseg score --task semantic --gt-dir sw/metro_drive/labels/val \\
      --pred-dir preds/metro_drive --labels sw/metro_drive/labels.yaml
  babelseg score --task semantic --gt-dir ade/annotations --pred-dir out --labels ade150.yaml \\
      --pred-suffix _pred --out metrics.json
  babelseg score --task semantic --gt-dir ade/annotations --pred-dir out --card ade20k-150 \\
      --card-file ade/objectInfo150.csv
  babelseg score --task panoptic --gt-json panoptic_val2017.json --gt-dir panoptic_val2017 \\
      --pred-json pred.json --pred-dir pred/ --out metrics.json
  babelseg score --task instance --gt-json instances_val2017.json --pred-json results.json

Semantic: both folders hold PNGs of ON-DISK label values of the label space in --labels or
--card (a card takes the same keys as in datasets.yaml; --card-file is its `file`) (what
`babelseg predict` writes); files are matched by stem (after removing --gt-suffix /
--pred-suffix). mIoU leaves out classes whose union is empty; ignore values are not scored.
Panoptic: COCO panoptic JSON + PNG folders, PQ/SQ/RQ with the panopticapi conventions.
Instance: COCO instances JSON and a COCO results JSON (RLE masks), mask AP by pycocotools.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--task",
        choices=["semantic", "panoptic", "instance"],
        default="semantic",
        help="what to score (default: semantic)",
    )
    p.add_argument("--gt-dir", help="folder of ground-truth label PNGs (semantic, panoptic)")
    p.add_argument("--pred-dir", help="folder of predicted label PNGs (semantic, panoptic)")
    p.add_argument("--labels", metavar="LABELS.yaml", help="label-space YAML (semantic)")
    p.add_argument(
        "--card",
        metavar="NAME",
        help="built-in label card instead of --labels (semantic), e.g. ade20k-150, cityscapes",
    )
    p.add_argument(
        "--card-file",
        metavar="F",
        help="the card's metadata file (its `file` key), e.g. objectInfo150.csv",
    )
    p.add_argument("--gt-json", help="COCO panoptic / instances JSON (panoptic, instance)")
    p.add_argument("--pred-json", help="COCO panoptic / results JSON (panoptic, instance)")
    p.add_argument("--gt-suffix", default="", help="suffix to strip from ground-truth stems")
    p.add_argument("--pred-suffix", default="", help="suffix to strip from prediction stems")
    p.add_argument(
        "--reduce-zero-label",
        action="store_true",
        help="ground truth stores value+1 with 0 = unlabelled (ADE20K style)",
    )
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="count a missing prediction as all-wrong instead of an error",
    )
    p.add_argument("--out", metavar="metrics.json", help="write the metrics JSON here")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")


def _by_stem(folder: Path, suffix: str, what: str) -> dict[str, Path]:
    """PNGs under ``folder`` (sub-folders too, e.g. Cityscapes cities) keyed by stem.

    With a suffix, only files whose stem ends with it count (a Cityscapes gtFine folder also
    holds labelIds, instanceIds and colour PNGs) and the suffix is cut from the key.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {folder}.")
    suffix = suffix.removesuffix(".png")
    files: dict[str, Path] = {}
    for f in sorted(folder.rglob("*.png")):
        if suffix and not f.stem.endswith(suffix):
            continue
        stem = f.stem[: len(f.stem) - len(suffix)]
        if stem in files:
            raise ValueError(
                f"Two {what} files have the stem '{stem}': {files[stem]} and {f}; "
                "stems must be unique under the folder (use --gt-suffix / --pred-suffix)."
            )
        files[stem] = f
    if not files:
        which = f" ending in '{suffix}.png'" if suffix else ""
        raise FileNotFoundError(f"No PNG files{which} in the {what} folder {folder}.")
    return files


def score_semantic(
    *,
    gt_dir: Path,
    pred_dir: Path,
    labels: Path | None = None,
    card: str | None = None,
    card_file: Path | None = None,
    gt_suffix: str = "",
    pred_suffix: str = "",
    reduce_zero_label: bool = False,
    allow_missing: bool = False,
) -> dict:
    """mIoU of prediction PNGs against ground-truth PNGs; returns the metrics mapping.

    The label space is the YAML ``labels`` or the built-in ``card`` (with its ``card_file``).
    """
    import numpy as np

    from babelseg.data.readers.semantic_png import value_table
    from babelseg.evaluation.report import semantic_entry, summarize
    from babelseg.evaluation.semantic import SemanticConfusion
    from babelseg.inference.label_png import read_label_values
    from babelseg.labels.space import IGNORE_INDEX, LabelSpace

    if (labels is None) == (card is None):
        raise ValueError("Give exactly one of --labels LABELS.yaml and --card NAME.")
    if card is not None:
        from babelseg.data.cards import card_space

        space = card_space(card, file=card_file, root=gt_dir, name=card)
        source = card
    else:
        assert labels is not None
        space = LabelSpace.from_yaml(labels)
        source = labels.stem
    gts = _by_stem(gt_dir, gt_suffix, "ground-truth")
    preds = _by_stem(pred_dir, pred_suffix, "prediction")
    missing = [s for s in gts if s not in preds]
    if missing and not allow_missing:
        raise FileNotFoundError(
            f"{len(missing)} ground-truth files have no prediction in {pred_dir} (e.g. "
            f"{', '.join(missing[:3])}); check --pred-suffix, or pass --allow-missing."
        )
    # The reader's table: with reduce_zero_label, on-disk 0 (and 255) is ignore, k is k - 1.
    gt_table, _ = value_table(space, {"reduce_zero_label": reduce_zero_label}, where=source)
    confusion = SemanticConfusion(num_classes=len(space), names=space.names)
    for stem, gt_path in gts.items():
        gt = gt_table[read_label_values(gt_path)]
        if stem in preds:
            pred_raw = read_label_values(preds[stem])
            if pred_raw.shape != gt.shape:
                raise ValueError(
                    f"Size mismatch: {preds[stem]} is {pred_raw.shape[::-1]} but {gt_path} is "
                    f"{gt.shape[::-1]} (width, height); predict at the ground truth's size."
                )
            pred = space.encode(pred_raw)
        else:
            pred = np.full_like(gt, IGNORE_INDEX)  # counted as wrong for every labelled pixel
        confusion.update(pred, gt)
    return summarize({source: semantic_entry(confusion.compute())})


NEEDS: dict[str, tuple[str, ...]] = {
    "semantic": ("gt_dir", "pred_dir"),
    "panoptic": ("gt_json", "gt_dir", "pred_json", "pred_dir"),
    "instance": ("gt_json", "pred_json"),
}
"""Task -> arguments it requires."""


def run(args: argparse.Namespace) -> int:
    from babelseg.evaluation.report import format_table, write_metrics_json

    missing = ["--" + k.replace("_", "-") for k in NEEDS[args.task] if getattr(args, k) is None]
    if missing:
        raise ValueError(f"--task {args.task} needs {', '.join(missing)}.")
    if args.task == "panoptic":
        from babelseg.evaluation.panoptic import score_panoptic_files

        metrics, text = score_panoptic_files(
            gt_json=args.gt_json,
            gt_dir=args.gt_dir,
            pred_json=args.pred_json,
            pred_dir=args.pred_dir,
        )
        print(text)
    elif args.task == "instance":
        from babelseg.evaluation.instance import score_instance_files

        metrics, text = score_instance_files(gt_json=args.gt_json, pred_json=args.pred_json)
        print(text)
    else:
        metrics = semantic_report(args)
        print(format_table(metrics, per_class=True))
    if args.out:
        write_metrics_json(Path(args.out), metrics)
        print(f"metrics written to {args.out}")
    return 0


def semantic_report(args: argparse.Namespace) -> dict:
    """:func:`score_semantic` with the command-line arguments."""
    return score_semantic(
        gt_dir=Path(args.gt_dir),
        pred_dir=Path(args.pred_dir),
        labels=Path(args.labels) if args.labels else None,
        card=args.card,
        card_file=Path(args.card_file) if args.card_file else None,
        gt_suffix=args.gt_suffix,
        pred_suffix=args.pred_suffix,
        reduce_zero_label=args.reduce_zero_label,
        allow_missing=args.allow_missing,
    )
