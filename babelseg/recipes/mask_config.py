"""The ``recipe.mask`` section, shared by the mask-classification recipes (``lmseg``,
``dataseg``), and the parts both build from it: network, text classifier, matcher and criterion."""

from __future__ import annotations

from dataclasses import dataclass

from babelseg.losses.mask_criterion import MaskCriterion
from babelseg.matching.hungarian import HungarianMatcher
from babelseg.models.heads.query_decoder import DECODING_ORDERS
from babelseg.models.heads.text_classifier import TextClassifier
from babelseg.models.mask_model import build_mask_model
from babelseg.recipes.base import RecipeContext


@dataclass
class MaskRecipeConfig:
    """Settings shared by the mask-classification recipes (``lmseg``, ``dataseg``).

    Attributes:
        no_object_weight: Classification weight of the "no object" class.
        class_weight / mask_weight / dice_weight: Loss (and matching cost) weights.
        num_points: Points sampled per mask for the mask losses and costs.
        oversample_ratio / importance_sample_ratio: Mask2Former's uncertainty point sampling.
        object_mask_threshold: Panoptic/instance: minimum class score of a kept query.
        overlap_threshold: Panoptic: minimum share of a query's mask left after overlaps.
        instance_top_k: Instance: masks kept per image.
    """

    no_object_weight: float = 0.1
    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    num_points: int = 1024
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    object_mask_threshold: float = 0.5
    overlap_threshold: float = 0.8
    instance_top_k: int = 50


def mask_recipe_arguments(
    mask: MaskRecipeConfig,
    *,
    context: RecipeContext,
    text_attention: bool,
    projection_weight: float,
    decoding_order: str = "visual-text",
) -> dict:
    """The network, classifier, criterion and post-processing settings both recipes share:
    keyword arguments of :class:`~babelseg.recipes.mask_common.MaskRecipe`.

    Args:
        mask: ``recipe.mask``.
        context: Label spaces (thing flags), embedding dim, the ``model:`` section, temperature.
        text_attention: Category-guided decoding (text cross-attention in the query decoder).
        projection_weight: Box projection loss weight (boxes-only data).
        decoding_order: ``visual-text`` or ``text-visual`` (with ``text_attention``).
    """
    m, order = context.model, decoding_order
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
        temperature=context.temperature,
        learn_temperature=context.learn_temperature,
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
