"""Tiny trained runs for the inference tests (a few steps on the tiny SynthWorld, hash labels)."""

from __future__ import annotations

from pathlib import Path

import yaml


def train_tiny_run(
    root: Path, synthworld: Path, *, recipe: str = "sentence", steps: int = 4
) -> Path:
    """Train ``recipe`` for ``steps`` steps into ``root/recipe`` and return the run directory."""
    from babelseg.engine.config import load_config
    from babelseg.engine.trainer import train

    recipe_section: dict = {"name": recipe}
    if recipe == "lmseg":
        recipe_section["lmseg"] = {"prompt_length": 0}  # hash labels have no transformer
    cfg = {
        "run_dir": str(root / recipe),
        "data": {
            "datasets_yaml": str(synthworld / "datasets.yaml"),
            "train": ["metro_drive", "vista_roads", "home_scenes"],
            "batch_size": 4,
            "crop": [48, 48],
            "num_workers": 0,
        },
        "labels": {"encoder": "hash", "cache_dir": str(root / "cache")},
        "model": {
            "backbone": "tiny",
            "backbone_kwargs": {"widths": [8, 16, 16, 16], "depths": [1, 1, 1, 1], "norm": "gn"},
            "decoder_dim": 16,
        },
        "recipe": recipe_section,
        "train": {"steps": steps, "checkpoint_every": steps, "log_every": 1, "warmup_steps": 1},
    }
    path = root / f"{recipe}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    train(load_config(str(path)), show_progress=False)
    return root / recipe
