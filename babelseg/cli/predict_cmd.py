"""``babelseg predict``: label PNGs and coloured overlays for any vocabulary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "Predict images or folders in any vocabulary (names or 'name: description')."
EPILOG = """examples:
  babelseg predict --run runs/default --labels "road, car, person, sky" photo.jpg --out preds/
  babelseg predict --checkpoint runs/default/ckpt_0002400 --dataset metro_drive \\
      sw/metro_drive/images/val --out preds/
  babelseg predict --run runs/default --labels-file my_labels.txt images/ --out preds/

--labels-file takes one label per line ("bus" or "bus: a road vehicle for many passengers")
or a label-space YAML. Outputs per image: STEM.png (label values), STEM_overlay.png, and
labels.yaml (the vocabulary, value = index) in --out.
"""

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", metavar="RUN_DIR", help="run directory (latest checkpoint)")
    src.add_argument("--checkpoint", metavar="CKPT", help="a checkpoint folder")
    vocab = p.add_mutually_exclusive_group(required=True)
    vocab.add_argument("--labels", help='comma-separated labels, e.g. "road, car, person"')
    vocab.add_argument("--labels-file", metavar="FILE", help="labels, one per line, or a YAML")
    vocab.add_argument("--dataset", metavar="NAME", help="a dataset's label space from training")
    p.add_argument("inputs", nargs="+", help="image files and/or folders of images")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (default 0.5)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")


def collect_images(inputs: list[str]) -> list[Path]:
    """Image files named directly or found (non-recursively, sorted) in named folders."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"No images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {p}.")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"Input not found: {p}. Give image files or folders.")
    return files


def read_labels_file(path: Path):
    from babelseg.labels.space import LabelSpace

    if not path.is_file():
        raise FileNotFoundError(f"Labels file not found: {path}.")
    if path.suffix in (".yaml", ".yml"):
        return LabelSpace.from_yaml(path)
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    names = [ln for ln in lines if ln and not ln.startswith("#")]
    if not names:
        raise ValueError(f"{path} lists no labels (one per line).")
    return LabelSpace.from_names(names, name=path.stem)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import yaml

    from babelseg.data.image_io import read_rgb
    from babelseg.inference.label_png import indices_to_values, write_label_png
    from babelseg.inference.predictor import Predictor
    from babelseg.inference.visualize import save_overlay
    from babelseg.labels.space import IGNORE_INDEX, LabelSpace

    images = collect_images(args.inputs)
    predictor = Predictor.from_checkpoint(args.run or args.checkpoint, device=args.device)
    if args.dataset:
        space, text = predictor.dataset_vocabulary(args.dataset)
    else:
        if args.labels:
            names = [n for n in args.labels.split(",") if n.strip()]
            if not names:
                raise ValueError('--labels is empty; give e.g. --labels "road, car, person".')
            space = LabelSpace.from_names(names, name="custom")
        else:
            space = read_labels_file(Path(args.labels_file))
        text = predictor.vocabulary(space)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "labels.yaml").write_text(yaml.safe_dump(space.to_dict(), sort_keys=False))
    failures = 0
    for path in images:
        try:
            image = read_rgb(path)
        except (OSError, ValueError) as e:
            print(f"skipping {path}: {e}", file=sys.stderr)
            failures += 1
            continue
        pred = predictor.predict(image, text)
        write_label_png(out / f"{path.stem}.png", indices_to_values(pred, space))
        save_overlay(
            out / f"{path.stem}_overlay.png",
            image,
            pred,
            names=space.names,
            palette=space.palette,
            alpha=args.alpha,
            ignore_index=IGNORE_INDEX if len(space) <= IGNORE_INDEX else -1,
        )
        present = [space.names[k] for k in np.unique(pred)]
        print(f"{path.name}: {', '.join(present)}")
    print(f"wrote {len(images) - failures} predictions to {out}/ (STEM.png, STEM_overlay.png)")
    return 1 if failures else 0
