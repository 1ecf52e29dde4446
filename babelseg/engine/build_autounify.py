"""Config -> the ``autounify`` recipe."""

from __future__ import annotations

from babelseg.engine.config import Config
from babelseg.models.builders import build_pixel_model
from babelseg.recipes.autounify import AutoUnifyRecipe
from babelseg.recipes.base import RecipeContext


def build_autounify_recipe(cfg: Config, context: RecipeContext) -> AutoUnifyRecipe:
    """The ``autounify`` recipe (AutoUniSeg.txt) over the run's training datasets."""
    if not context.train_datasets:
        raise ValueError(
            "recipe.name=autounify needs the training datasets' label spaces; build it through "
            "the trainer or Predictor.from_checkpoint (a RecipeContext with train_datasets)."
        )
    au = cfg.recipe.autounify
    model = build_pixel_model(
        backbone=cfg.model.backbone,
        backbone_kwargs=dict(cfg.model.backbone_kwargs),
        decoder_dim=cfg.model.decoder_dim,
        embed_dim=context.embed_dim,
        weights=cfg.model.weights,
    )
    names = list(context.train_datasets)
    return AutoUnifyRecipe(
        model=model,
        label_spaces={n: context.label_spaces[n] for n in names},
        label_texts={n: context.texts[n] for n in names},
        total_steps=cfg.train.steps,
        num_unified=au.num_unified,
        graph_layers=au.graph_layers,
        orthogonality_weight=au.orthogonality_weight,
        alternate_every=au.alternate_every,
        remap_every=au.remap_every,
        warmup_steps=au.warmup_steps,
        temperature=cfg.recipe.temperature,
        adjacency_scale=au.adjacency_scale,
        min_share=au.min_share,
        min_match=au.min_match,
        min_presence=au.min_presence,
        text_weight=au.text_weight,
        text_floor=au.text_floor,
        orthogonality_tau=au.orthogonality_tau,
        zero_shot_tau=au.zero_shot_tau,
    )
