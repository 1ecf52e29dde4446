"""Config -> the text-free baselines ``union`` and ``multihead``."""

from __future__ import annotations

from babelseg.engine.config import Config
from babelseg.models.builders import build_pixel_model
from babelseg.models.pixel_model import PixelEmbeddingModel
from babelseg.recipes.base import RecipeContext
from babelseg.recipes.multihead import MultiHeadRecipe
from babelseg.recipes.union import UnionRecipe


def _body(cfg: Config, context: RecipeContext) -> PixelEmbeddingModel:
    """The shared pixel-embedding network, the same as the ``sentence`` recipe's."""
    return build_pixel_model(
        backbone=cfg.model.backbone,
        backbone_kwargs=dict(cfg.model.backbone_kwargs),
        decoder_dim=cfg.model.decoder_dim,
        embed_dim=context.embed_dim,
        weights=cfg.model.weights,
    )


def _check_context(recipe: str, context: RecipeContext) -> None:
    if not context.train_datasets:
        raise ValueError(
            f"Recipe '{recipe}' classifies into the training datasets' label spaces, so it needs "
            "them: build it with a RecipeContext that names train_datasets (the trainer and "
            "Predictor.from_checkpoint do)."
        )
    missing = [
        d for d in context.train_datasets if d not in context.label_spaces or d not in context.texts
    ]
    if missing:
        raise ValueError(
            f"Recipe '{recipe}': no label space or texts for training dataset(s) {missing}; "
            f"known: {sorted(context.label_spaces)}."
        )


def build_union_recipe(cfg: Config, context: RecipeContext) -> UnionRecipe:
    """The ``union`` baseline: one-hot classes over the merged training label spaces."""
    _check_context("union", context)
    return UnionRecipe(
        model=_body(cfg, context),
        embed_dim=context.embed_dim,
        class_names={d: context.label_spaces[d].names for d in context.train_datasets},
        label_texts={d: context.texts[d] for d in context.train_datasets},
    )


def build_multihead_recipe(cfg: Config, context: RecipeContext) -> MultiHeadRecipe:
    """The ``multihead`` baseline: shared body, one classifier per training dataset."""
    _check_context("multihead", context)
    return MultiHeadRecipe(
        model=_body(cfg, context),
        embed_dim=context.embed_dim,
        num_classes={d: len(context.label_spaces[d]) for d in context.train_datasets},
        label_texts={d: context.texts[d] for d in context.train_datasets},
    )
