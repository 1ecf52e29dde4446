"""``babelseg export``: ONNX, TorchScript or torch.export files of a trained model."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Export a trained model (ONNX, TorchScript, torch.export) for deployment."
EPILOG = """examples:
  babelseg export --run runs/default --format onnx --dataset metro_drive --out model.onnx
  babelseg export --run runs/default --format torchscript --labels "road, car, person" \\
      --size 512x512 --output labels --out model.pt
  babelseg export --run runs/default --format exported-program --out model.pt2   # text input

The exported model takes RGB images float32[B, 3, H, W] in 0..1 (normalisation inside) with H
and W multiples of 32, plus text embeddings float32[K, D] as a second input when no vocabulary
(--labels / --labels-file / --dataset / --space) is baked in. It returns class scores
float32[B, K, H/4, W/4] (--output logits) or class indices int64[B, H, W] (--output labels).
ONNX and exported programs take any batch and any such size; TorchScript is traced at --size.
OUT.json next to the file lists the inputs, the output and the vocabulary (names, on-disk
values). Each export is run once on a sample and compared with the eager model.
Only the per-pixel recipes (sentence, ms3, autounify, union, multihead) export.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", metavar="RUN_DIR", help="run directory (latest checkpoint)")
    src.add_argument("--checkpoint", metavar="CKPT", help="a checkpoint folder")
    p.add_argument("--format", required=True, choices=["onnx", "torchscript", "exported-program"])
    vocab = p.add_mutually_exclusive_group()
    vocab.add_argument("--labels", help='labels to bake in, e.g. "road, car, person"')
    vocab.add_argument("--labels-file", metavar="FILE", help="labels, one per line, or a YAML")
    vocab.add_argument("--dataset", metavar="NAME", help="a dataset's label space to bake in")
    vocab.add_argument("--space", choices=["unified"], help="autounify's unified label space")
    p.add_argument("--output", choices=["logits", "labels"], default="logits")
    p.add_argument("--size", default="512x512", help="example H x W, multiples of 32 (512x512)")
    p.add_argument("--out", required=True, metavar="FILE", help="file to write")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError as e:
        raise ValueError(f"--size must be HxW, e.g. 512x512, got '{text}'.") from e
    return height, width


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from babelseg.cli.predict_cmd import read_labels_file
    from babelseg.inference.api import SegmentationModel
    from babelseg.inference.export import (
        ExportableSegmenter,
        check_exportable,
        example_inputs,
        export_model,
        run_exported,
    )
    from babelseg.inference.predictor import Predictor

    size = _size(args.size)
    predictor = Predictor.from_checkpoint(args.run or args.checkpoint)
    check_exportable(predictor)
    space = text = dataset = None
    if args.labels or args.labels_file or args.dataset or args.space:
        labels = read_labels_file(Path(args.labels_file)) if args.labels_file else args.labels
        vocab = SegmentationModel(predictor=predictor).vocabulary(
            labels=labels, dataset=args.dataset, space=args.space
        )
        space, text, dataset = vocab.space, vocab.text, vocab.dataset
    out = export_model(
        predictor,
        fmt=args.format,
        out=args.out,
        space=space,
        text=text,
        dataset=dataset,
        output=args.output,
        size=size,
    )
    module = ExportableSegmenter(
        recipe=predictor.recipe, text=text, dataset=dataset, output=args.output
    )
    embed_dim = int(next(iter(predictor.texts.values())).shape[1])
    inputs = example_inputs(module, size, classes=8, embed_dim=embed_dim)
    eager = module(*inputs).detach().numpy()
    try:
        got = run_exported(out, args.format, inputs)
    except ImportError as e:
        print(f"wrote {out} and {out}.json; not checked: {e} (pip install onnxruntime)")
        return 0
    if args.output == "logits":
        check = f"max |exported - eager| = {float(np.abs(got - eager).max()):.2e}"
    else:
        check = f"{100.0 * float((got == eager).mean()):.2f}% of labels equal to eager"
    vocab_note = f"{len(space)} labels baked in" if space is not None else "text as 2nd input"
    print(f"wrote {out} ({args.format}, {args.output}, {vocab_note}) and {out}.json")
    print(f"checked on 2 random {size[0]}x{size[1]} images: {check}")
    return 0
