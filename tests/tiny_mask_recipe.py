"""A tiny mask recipe (lmseg or dataseg) built without data, for the loss and matching tests:
three classes ("sky" stuff, "car" thing, "road" stuff) in every dataset, 4 queries, 1 decoder
layer, hashed texts."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from babelseg.engine.builders import build_recipe
from babelseg.engine.config import load_config
from babelseg.labels.space import ClassDef, LabelSpace
from babelseg.recipes.base import RecipeContext

TINY = [
    "model.backbone_kwargs={widths: [8, 8, 8, 8], depths: [1, 1, 1, 1], norm: gn}",
    "model.decoder_dim=16",
    "model.num_queries=4",
    "model.query_layers=1",
    "model.query_ffn_dim=32",
    "recipe.mask.num_points=64",
    "recipe.learn_temperature=false",
    "recipe.lmseg.prompt_length=0",
    "labels.encoder=hash",
]
SPACE = LabelSpace([ClassDef("sky"), ClassDef("car", is_thing=True), ClassDef("road")], name="x")


def tiny_mask_recipe(name: str, *overrides: str, datasets: Sequence[str] = ("pan", "sem")):
    """``recipe.name=name`` on the tiny model, every dataset in ``datasets`` with ``SPACE``."""
    torch.manual_seed(0)
    cfg = load_config(None, [f"recipe.name={name}", *TINY, *overrides])
    context = RecipeContext(
        label_spaces={d: SPACE for d in datasets},
        texts={},
        label_texts={},
        train_datasets=list(datasets),
        embed_dim=4,
    )
    return build_recipe(cfg, embed_dim=4, context=context)
