"""A run trained from a local transformers backbone folder predicts after the folder moves."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
import yaml

from babelseg.engine.config import load_config
from babelseg.engine.portable_backbone import STATE_KEY
from babelseg.engine.trainer import train
from babelseg.inference.predictor import Predictor


def test_predict_after_the_backbone_folder_moves(tiny_synthworld, tmp_path: Path):
    import transformers

    folder = tmp_path / "my_backbone"
    torch.manual_seed(0)
    config = transformers.ConvNextConfig(depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 16, 16])
    transformers.ConvNextBackbone(config).save_pretrained(folder)
    cfg = {
        "run_dir": str(tmp_path / "run"),
        "data": {
            "datasets_yaml": str(tiny_synthworld / "datasets.yaml"),
            "train": ["metro_drive"],
            "batch_size": 2,
            "crop": [32, 32],
            "num_workers": 0,
        },
        "labels": {"encoder": "hash", "cache_dir": str(tmp_path / "cache")},
        "model": {
            "backbone": "hf",
            "backbone_kwargs": {"name_or_path": str(folder)},
            "decoder_dim": 16,
        },
        "train": {"steps": 2, "checkpoint_every": 2, "warmup_steps": 1, "eval_at_end": False},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = train(load_config(path)).run_dir
    image = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    before = Predictor.from_checkpoint(run)
    _, text = before.dataset_vocabulary("metro_drive")
    logits_before = before.logits(image, text, dataset="metro_drive")

    shutil.move(str(folder), str(tmp_path / "moved_away"))
    after = Predictor.from_checkpoint(run)
    assert "name_or_path" not in after.cfg.model.backbone_kwargs
    torch.testing.assert_close(after.logits(image, text, dataset="metro_drive"), logits_before)
    # The stored model section names no file.
    from babelseg.engine import checkpoint as ckpt

    _, state = ckpt.read_checkpoint_state(run)
    assert state[STATE_KEY]["backbone_kwargs"]["config"]["model_type"] == "convnext"
    assert state[STATE_KEY]["weights"] is None
