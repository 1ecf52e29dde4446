"""The recipe contract, for every recipe in the catalog (in the manner of timm's test_models.py).

Each recipe is built tiny and trained a few steps through the real trainer (phase-based recipes
through all their phases); every trainable parameter must receive a gradient in some step. Then
the checkpoint is loaded through :class:`Predictor`: ``semantic_logits`` shapes, the
``extra_state`` round trip, and predictions of every task the recipe says it predicts.
"""

import json

import numpy as np
import pytest
import torch
import yaml

from babelseg.data.collate import normalize_image
from babelseg.engine import trainer as trainer_module
from babelseg.engine.config import load_config
from babelseg.engine.trainer import train
from babelseg.inference.predictor import Predictor
from babelseg.recipes.base import Recipe
from babelseg.recipes.catalog import CATALOG

MASK = {"learn_temperature": False, "mask": {"num_points": 32}}
MINILM = {"encoder": "minilm", "text_mode": "name"}
VARIANTS = {
    "sentence": ({"name": "sentence"}, {"train": ["metro_drive", "home_scenes", "open_boxes"]}),
    "autounify": (
        {
            "name": "autounify",
            "autounify": {"warmup_steps": 2, "alternate_every": 1, "final_steps": 1},
        },
        {},
    ),
    "lmseg": ({"name": "lmseg", **MASK, "lmseg": {"prompt_length": 0}}, {}),
    "dataseg": (
        {"name": "dataseg", **MASK},
        {"train": ["metro_drive", "pascal_objects", "open_boxes"]},
    ),
    "ms3": ({"name": "ms3", "ms3": {"context_length": 0, "bank_size": 4}}, {}),
    "union": ({"name": "union"}, {}),
    "multihead": ({"name": "multihead"}, {}),
}
PROMPTED = {  # learned prompts need a transformer text encoder
    "lmseg+prompt": ({"name": "lmseg", **MASK, "lmseg": {"prompt_length": 2}}, {}),
    "ms3+prompt": (
        {"name": "ms3", "ms3": {"context_length": 2, "prompt_steps": 2, "bank_size": 4}},
        {},
    ),
}
STEPS = {"autounify": 6, "ms3+prompt": 3}


def test_every_catalog_recipe_has_a_contract_case():
    assert set(VARIANTS) == set(CATALOG)


def _config(tmp_path, world, case: str) -> str:
    recipe, data = {**VARIANTS, **PROMPTED}[case]
    cfg = {
        "run_dir": str(tmp_path / "run"),
        "data": {
            "datasets_yaml": str(world / "datasets.yaml"),
            "train": ["metro_drive", "vista_roads"],
            "batch_size": 2,
            "crop": [32, 32],
            "num_workers": 0,
            **data,
        },
        "labels": {
            **({"encoder": "hash"} if case in VARIANTS else MINILM),
            "cache_dir": str(tmp_path / "cache"),
        },
        "model": {
            "backbone_kwargs": {"widths": [8, 8, 8, 8], "depths": [1, 1, 1, 1], "norm": "gn"},
            "decoder_dim": 8,
            "num_queries": 4,
            "query_layers": 1,
            "query_ffn_dim": 16,
        },
        "recipe": recipe,
        "train": {
            "steps": STEPS.get(case, 2),
            "checkpoint_every": 100,
            "log_every": 100,
            "warmup_steps": 1,
            "eval_at_end": False,
        },
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _train_recording_gradients(monkeypatch, cfg):
    """Train through the real trainer; returns the trained recipe, its trainable parameter
    names and the names of those that received a gradient in some step."""
    built: dict = {}

    def build_and_watch(*args, **kwargs):
        recipe = real_build(*args, **kwargs)
        built["recipe"] = recipe
        built["trainable"] = {n for n, p in recipe.named_parameters() if p.requires_grad}
        built["got_grad"] = set()
        for name, p in recipe.named_parameters():
            if p.requires_grad:
                p.register_post_accumulate_grad_hook(
                    lambda _p, name=name: built["got_grad"].add(name)
                )
        return recipe

    real_build = trainer_module.build_recipe
    monkeypatch.setattr(trainer_module, "build_recipe", build_and_watch)
    result = train(cfg, show_progress=False)
    assert np.isfinite(result.final_loss)
    return result, built


@pytest.mark.parametrize("case", [*VARIANTS, *PROMPTED])
def test_recipe_contract(case, tiny_synthworld, tmp_path, monkeypatch):
    cfg = load_config(_config(tmp_path, tiny_synthworld, case))
    result, built = _train_recording_gradients(monkeypatch, cfg)
    recipe = built["recipe"]
    assert isinstance(recipe, Recipe) and recipe.name == cfg.recipe.name
    missing = sorted(built["trainable"] - built["got_grad"])
    assert not missing, f"{case}: trainable parameters without a gradient: {missing}"

    predictor = Predictor.from_checkpoint(result.run_dir)
    loaded = predictor.recipe
    # extra_state: JSON-safe, restored by the checkpoint, and a round trip keeps it
    state = json.loads(json.dumps(recipe.extra_state()))
    assert loaded.extra_state() == state
    loaded.load_extra_state(state)
    assert loaded.extra_state() == state

    name = cfg.data.train[0]
    space, text = predictor.dataset_vocabulary(name)
    images = torch.stack([normalize_image(np.full((40, 48, 3), v, np.uint8)) for v in (50, 200)])
    with torch.no_grad():
        out = loaded(images, texts=[text, text]) if loaded.forward_takes_texts else loaded(images)
        logits = loaded.semantic_logits(out, text, dataset=name)
        major = loaded.semantic_logits(out, text, dataset=name, pixel_major=True)
    assert logits.shape == (2, len(space), 10, 12)
    assert major.shape == (2, 10, 12, len(space))
    torch.testing.assert_close(major, logits.permute(0, 2, 3, 1))

    image = np.full((40, 48, 3), 120, np.uint8)
    tasks = ("semantic", "panoptic", "instances") if loaded.predicts_segments else ("semantic",)
    got = predictor.predict_tasks(image, text, tasks=tasks, is_thing=space.thing_mask, dataset=name)
    assert got.semantic.shape == (40, 48) and got.semantic.max() < len(space)
    if loaded.predicts_segments:
        assert got.panoptic.segment_ids.shape == (40, 48)
        assert all(m.shape == (40, 48) for m in got.instances.masks)
    else:
        with pytest.raises(ValueError, match="per-pixel classes only"):
            predictor.predict_tasks(image, text, tasks=("panoptic",), is_thing=space.thing_mask)
