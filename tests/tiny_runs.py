"""The tests' tiny run config (hash labels, a small GroupNorm model on the tiny SynthWorld) and
tiny trained runs for the inference tests."""

from __future__ import annotations

from pathlib import Path

import yaml


def tiny_config(*, run_dir: Path, synthworld: Path, cache_dir: Path, **sections) -> dict:
    """A fast run config; each keyword section updates the default one (a dict) or replaces it."""
    cfg = {
        "run_dir": str(run_dir),
        "data": {
            "datasets_yaml": str(synthworld / "datasets.yaml"),
            "train": ["metro_drive", "vista_roads", "home_scenes"],
            "batch_size": 4,
            "crop": [48, 48],
            "num_workers": 0,
        },
        "labels": {"encoder": "hash", "cache_dir": str(cache_dir)},
        "model": {
            "backbone": "tiny",
            "backbone_kwargs": {"widths": [8, 16, 16, 16], "depths": [1, 1, 1, 1], "norm": "gn"},
            "decoder_dim": 16,
        },
        "train": {"steps": 6, "checkpoint_every": 3, "log_every": 1, "warmup_steps": 2},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            cfg.setdefault(section, {}).update(values)
        else:
            cfg[section] = values
    return cfg


def train_tiny_run(
    root: Path, synthworld: Path, *, recipe: str = "sentence", steps: int = 4
) -> Path:
    """Train ``recipe`` for ``steps`` steps into ``root/recipe`` and return the run directory."""
    from babelseg.engine.config import load_config
    from babelseg.engine.trainer import train

    recipe_section: dict = {"name": recipe}
    if recipe == "lmseg":
        recipe_section["lmseg"] = {"prompt_length": 0}  # hash labels have no transformer
    cfg = tiny_config(
        run_dir=root / recipe,
        synthworld=synthworld,
        cache_dir=root / "cache",
        recipe=recipe_section,
        train={"steps": steps, "checkpoint_every": steps, "log_every": 1, "warmup_steps": 1},
    )
    path = root / f"{recipe}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    train(load_config(str(path)), show_progress=False)
    return root / recipe
