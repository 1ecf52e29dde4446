"""Seeded losses and predictions of every recipe, for checking that a refactoring changes nothing.

Trains each recipe variant below for a few steps on a tiny SynthWorld (hash or MiniLM texts, a
tiny GroupNorm network), then prints, per step, the loss, the per-dataset losses and the
recipe's logged scalars (full float precision), a digest of the final weights, and a digest of
the predictions of the saved checkpoint through :class:`~babelseg.inference.predictor.Predictor`
(semantic labels of one image per training dataset; panoptic segments for the mask recipes).
Timing columns are left out, so two runs of the same code print the same text:

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/recipe_parity.py > /tmp/before.txt
    ... refactor ...
    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/recipe_parity.py > /tmp/after.txt
    diff /tmp/before.txt /tmp/after.txt    # empty: bit-for-bit identical

``--only NAME`` runs the variants whose name starts with NAME. ``--keep DIR`` keeps the data and
runs; ``--load DIR`` (later, with newer code) prints the predictions of those kept checkpoints,
which must equal the ones printed when they were written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from babelseg.data.declaration import load_declarations  # noqa: E402
from babelseg.data.readers import make_reader  # noqa: E402
from babelseg.data.synth.generate import generate  # noqa: E402
from babelseg.engine.config import load_config  # noqa: E402
from babelseg.engine.trainer import train  # noqa: E402
from babelseg.inference.predictor import Predictor  # noqa: E402

TIMING_KEYS = ("images_per_s",)
MASK_MODEL = {"num_queries": 6, "query_layers": 1, "query_ffn_dim": 32}
MASK_RECIPE = {"learn_temperature": False, "mask": {"num_points": 64}}
MINILM_NAMES = {"encoder": "minilm", "text_mode": "name"}
VARIANTS: dict[str, dict] = {
    "sentence": {
        "data": {"train": ["metro_drive", "home_scenes", "open_boxes"]},
        "recipe": {"name": "sentence"},
    },
    "union": {"recipe": {"name": "union"}},
    "multihead": {"recipe": {"name": "multihead"}},
    "autounify": {
        "recipe": {
            "name": "autounify",
            "autounify": {"warmup_steps": 2, "alternate_every": 1, "remap_every": 2},
        },
        "train": {"steps": 6},
    },
    "lmseg": {
        "model": MASK_MODEL,
        "recipe": {"name": "lmseg", **MASK_RECIPE, "lmseg": {"prompt_length": 0}},
    },
    "lmseg-prompt": {
        "labels": MINILM_NAMES,
        "data": {"train": ["metro_drive", "home_scenes"], "batch_size": 2},
        "model": MASK_MODEL,
        "recipe": {"name": "lmseg", **MASK_RECIPE, "lmseg": {"prompt_length": 2}},
    },
    "dataseg": {
        "data": {
            "train": ["metro_drive", "pascal_objects", "open_boxes"],
            "sampling": "per_dataset",
        },
        "model": MASK_MODEL,
        "recipe": {"name": "dataseg", **MASK_RECIPE},
    },
    "ms3": {"recipe": {"name": "ms3", "ms3": {"context_length": 0, "bank_size": 8}}},
    "ms3-prompt": {
        "labels": MINILM_NAMES,
        "data": {"train": ["metro_drive", "home_scenes"], "batch_size": 2},
        "recipe": {"name": "ms3", "ms3": {"context_length": 2, "prompt_steps": 2, "bank_size": 8}},
    },
}


def run_config(world: Path, out: Path, name: str, variant: dict) -> dict:
    cfg = {
        "run_dir": str(out / name),
        "data": {
            "datasets_yaml": str(world / "datasets.yaml"),
            "train": ["metro_drive", "vista_roads", "home_scenes"],
            "batch_size": 3,
            "crop": [32, 32],
            "num_workers": 0,
        },
        "labels": {"encoder": "hash", "cache_dir": str(out / "cache")},
        "model": {
            "backbone": "tiny",
            "backbone_kwargs": {"widths": [8, 16, 16, 16], "depths": [1, 1, 1, 1], "norm": "gn"},
            "decoder_dim": 16,
        },
        "train": {
            "steps": 3,
            "checkpoint_every": 100,
            "log_every": 1,
            "warmup_steps": 1,
            "eval_at_end": False,
            "seed": 0,
        },
    }
    for section, values in variant.items():
        cfg.setdefault(section, {}).update(values)
    return cfg


def digest(array) -> str:
    data = np.ascontiguousarray(np.asarray(array))
    return hashlib.sha256(data.tobytes() + str(data.dtype).encode()).hexdigest()[:16]


def weights_digest(recipe: torch.nn.Module) -> str:
    """A digest of every weight's values, independent of the names (a renamed buffer with
    the same values gives the same digest)."""
    parts = sorted(
        hashlib.sha256(value.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
        for value in recipe.state_dict().values()
    )
    return hashlib.sha256("".join(parts).encode()).hexdigest()[:16]


def predictions(run_dir: Path, world: Path) -> list[str]:
    predictor = Predictor.from_checkpoint(run_dir)
    decls = load_declarations(world / "datasets.yaml")
    lines = []
    for name in predictor.train_datasets:
        space, text = predictor.dataset_vocabulary(name)
        sample = make_reader(decls[name], "val", space)[0]
        tasks = ("semantic", "panoptic") if predictor.predicts_segments else ("semantic",)
        got = predictor.predict_tasks(
            sample.image, text, tasks=tasks, is_thing=space.thing_mask, dataset=name
        )
        line = f"  predict {name}: semantic {digest(got.semantic)}"
        if got.panoptic is not None:
            line += f" panoptic {digest(got.panoptic.segment_ids)}"
        logits = predictor.logits(sample.image, text, dataset=name)
        lines.append(line + f" logits_sum {float(logits.double().sum())!r}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run the variants starting with this name")
    parser.add_argument(
        "--keep", default=None, help="write the data and runs here (kept) instead of a temp dir"
    )
    parser.add_argument(
        "--load",
        default=None,
        help="print the predictions of the runs kept in this folder by an earlier --keep "
        "(do checkpoints written by older code still load and predict the same?)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.load:
        world, out = Path(args.load) / "sw", Path(args.load) / "runs"
        for name in VARIANTS:
            if name.startswith(args.only):
                print(f"== {name}")
                for line in predictions(out / name, world):
                    print(line)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        world, out = root / "sw", root / "runs"
        generate(world, scale="tiny", seed=0, workers=1, progress=False, overwrite=True)
        for name, variant in VARIANTS.items():
            if not name.startswith(args.only):
                continue
            path = out / f"{name}.yaml"
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(run_config(world, out, name, variant)))
            result = train(load_config(path), show_progress=False)
            print(f"== {name}")
            for line in (result.run_dir / "metrics.jsonl").read_text().splitlines():
                record = {k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS}
                print("  " + json.dumps(record, sort_keys=True))
            predictor = Predictor.from_checkpoint(result.run_dir)
            print(f"  weights {weights_digest(predictor.recipe)}")
            for line in predictions(result.run_dir, world):
                print(line)
            sys.stdout.flush()


if __name__ == "__main__":
    main()
