"""Config -> the mask-classification recipes ``lmseg`` and ``dataseg``."""

from __future__ import annotations

from babelseg.engine.config import Config
from babelseg.labels.prompt import prompt_learner_for
from babelseg.losses.mask_criterion import MaskCriterion
from babelseg.matching.hungarian import HungarianMatcher
from babelseg.models.heads.query_decoder import DECODING_ORDERS
from babelseg.models.mask_model import build_mask_model
from babelseg.recipes.base import RecipeContext
from babelseg.recipes.dataseg import DaTaSegRecipe
from babelseg.recipes.lmseg import LMSegRecipe
from babelseg.recipes.mask_common import TextClassifier


def _mask_recipe_kwargs(
    cfg: Config, context: RecipeContext, *, text_attention: bool, projection_weight: float
) -> dict:
    """The network, classifier, criterion and post-processing settings both recipes share."""
    m, mask = cfg.model, cfg.recipe.mask
    order = cfg.recipe.lmseg.decoding_order
    if order not in DECODING_ORDERS:
        raise ValueError(
            f"recipe.lmseg.decoding_order must be one of {list(DECODING_ORDERS)}, got '{order}'."
        )
    if context.embed_dim < 1:
        raise ValueError("The mask recipes need the text-embedding dimension (context.embed_dim).")
    model = build_mask_model(
        backbone=m.backbone,
        backbone_kwargs=dict(m.backbone_kwargs),
        decoder_dim=m.decoder_dim,
        embed_dim=context.embed_dim,
        num_queries=m.num_queries,
        query_layers=m.query_layers,
        query_heads=m.query_heads,
        query_ffn_dim=m.query_ffn_dim,
        masked_attention=m.masked_attention,
        text_attention=text_attention,
        decoding_order=order,
        weights=m.weights,
    )
    matcher = HungarianMatcher(
        class_weight=mask.class_weight,
        mask_weight=mask.mask_weight,
        dice_weight=mask.dice_weight,
        projection_weight=projection_weight,
        num_points=mask.num_points,
    )
    criterion = MaskCriterion(
        matcher=matcher,
        no_object_weight=mask.no_object_weight,
        class_weight=mask.class_weight,
        mask_weight=mask.mask_weight,
        dice_weight=mask.dice_weight,
        projection_weight=projection_weight,
        num_points=mask.num_points,
        oversample_ratio=mask.oversample_ratio,
        importance_sample_ratio=mask.importance_sample_ratio,
    )
    classifier = TextClassifier(
        embed_dim=context.embed_dim,
        temperature=cfg.recipe.temperature,
        learn_temperature=cfg.recipe.learn_temperature,
    )
    return {
        "model": model,
        "classifier": classifier,
        "criterion": criterion,
        "object_mask_threshold": mask.object_mask_threshold,
        "overlap_threshold": mask.overlap_threshold,
        "instance_top_k": mask.instance_top_k,
        "thing_flags": {n: s.thing_mask.tolist() for n, s in context.label_spaces.items()},
    }


def build_lmseg_recipe(cfg: Config, context: RecipeContext) -> LMSegRecipe:
    """The ``lmseg`` recipe (LMSeg.txt); the prompt learner reads the configured text encoder."""
    lm = cfg.recipe.lmseg
    if lm.prompt_length < 0:
        raise ValueError(f"recipe.lmseg.prompt_length must be >= 0, got {lm.prompt_length}.")
    prompt = None
    if lm.prompt_length > 0:
        # imported here: builders.py imports this module for its RECIPES table
        from babelseg.engine.builders import build_text_encoder_from_config

        encoder = build_text_encoder_from_config(cfg.labels, device=cfg.train.device)
        prompt = prompt_learner_for(encoder, lm.prompt_length)
    kwargs = _mask_recipe_kwargs(
        cfg, context, text_attention=lm.category_guided, projection_weight=0.0
    )
    return LMSegRecipe(
        prompt=prompt,
        label_texts=context.label_texts,
        train_datasets=context.train_datasets,
        **kwargs,
    )


def build_dataseg_recipe(cfg: Config, context: RecipeContext) -> DaTaSegRecipe:
    """The ``dataseg`` recipe (DaTaSeg.txt)."""
    ds = cfg.recipe.dataseg
    unknown = sorted(set(ds.dataset_loss_weights) - set(context.label_spaces))
    if unknown and context.label_spaces:
        raise ValueError(
            f"recipe.dataseg.dataset_loss_weights names unknown datasets {unknown}; declared: "
            f"{sorted(context.label_spaces)}."
        )
    kwargs = _mask_recipe_kwargs(
        cfg, context, text_attention=False, projection_weight=ds.projection_weight
    )
    return DaTaSegRecipe(
        merge=ds.merge,
        dataset_loss_weights={k: float(v) for k, v in ds.dataset_loss_weights.items()},
        **kwargs,
    )
