"""The ``recipe.mask`` section, shared by the mask-classification recipes (``lmseg``,
``dataseg``), and the parts both build from it: network, text classifier, matcher and criterion."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from babelseg.losses.mask_criterion import AUX_MATCHINGS, MASK_LOSSES, MaskCriterion
from babelseg.losses.term_weights import KIND_KEYS, TermWeights, override_weights
from babelseg.matching.hungarian import HungarianMatcher
from babelseg.models.heads.query_decoder import DECODING_ORDERS
from babelseg.models.heads.text_classifier import TextClassifier
from babelseg.models.mask_model import build_mask_model
from babelseg.recipes.base import RecipeContext


@dataclass
class MaskRecipeConfig:
    """Settings shared by the mask-classification recipes (``lmseg``, ``dataseg`` and the
    one-hot ``recipe.lmseg.classifier`` baselines).

    The defaults are LMSeg's (section 3.6, eq. 3-5): focal mask loss, class 1 / focal 20 /
    dice 1, the same weights in the matching cost, no-object weight 0.1; ``configs/lmseg.yaml``
    repeats them. ``configs/dataseg.yaml`` sets DaTaSeg's (Table 10, App. F) instead: they differ
    per dataset, so they live in that config's ``per_dataset`` block; and the auxiliary layers
    matched with the last layer's assignment (``aux_matching: last``, App. E). Mask2Former's
    weights (the defaults before issue 13) are ``mask_loss=ce class_weight=2 mask_weight=5
    dice_weight=5``.

    Attributes:
        mask_loss: Binary mask loss and matching cost: ``focal`` (LMSeg, DaTaSeg) or ``ce``
            (Mask2Former's sigmoid cross-entropy).
        focal_alpha / focal_gamma: Focal loss parameters (Lin et al.; neither paper gives
            other values; ``focal_alpha < 0``: no alpha weighting).
        no_object_weight: Classification weight of the "no object" (background) class.
        class_weight / mask_weight / dice_weight: Loss weights (the box projection loss weight
            is ``recipe.dataseg.projection_weight``).
        match_class_weight / match_mask_weight / match_dice_weight: Matching-cost weights;
            None: the loss weight of the same term.
        match_projection_weight: Matching weight of the box projection cost; None: the
            projection loss weight.
        per_dataset: ``{key: {term: value}}`` overrides of any weight above (and
            ``projection_weight``, the names in
            :data:`~babelseg.losses.term_weights.TERM_NAMES`), DaTaSeg Table 10. A key is a
            dataset name or a kind: ``semantic``, ``panoptic``, ``instance`` (every dataset of
            that task) or ``boxes`` (boxes-only data); a dataset's own entry wins over its
            kind's. Applied per image, so mixed batches (lmseg) get each image's weights.
        aux_matching: How the auxiliary (deep-supervision) decoder layers are matched:
            ``per_layer`` (the default; Mask2Former's, each layer on its own predictions; LMSeg
            says nothing of it, so this is OUR choice for lmseg) or ``last`` (DaTaSeg App. E:
            the final layer matched once, its (query, target) indices used for every auxiliary
            layer's losses; ``configs/dataseg.yaml`` sets it).
        num_points: Points sampled per mask for the mask losses and costs.
        oversample_ratio / importance_sample_ratio: Mask2Former's uncertainty point sampling.
        object_mask_threshold: Panoptic/instance: minimum class score of a kept query.
        overlap_threshold: Panoptic: minimum share of a query's mask left after overlaps.
        instance_top_k: Instance: masks kept per image.
    """

    mask_loss: str = "focal"
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    no_object_weight: float = 0.1
    class_weight: float = 1.0
    mask_weight: float = 20.0
    dice_weight: float = 1.0
    match_class_weight: float | None = None
    match_mask_weight: float | None = None
    match_dice_weight: float | None = None
    match_projection_weight: float | None = None
    per_dataset: dict[str, dict[str, float]] = field(default_factory=dict)
    aux_matching: str = "per_layer"
    num_points: int = 1024
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    object_mask_threshold: float = 0.5
    overlap_threshold: float = 0.8
    instance_top_k: int = 50

    def term_weights(self, *, projection_weight: float) -> TermWeights:
        """The weights of datasets without a ``per_dataset`` entry."""

        def either(value: float | None, fallback: float) -> float:
            return float(fallback if value is None else value)

        return TermWeights(
            class_weight=self.class_weight,
            mask_weight=self.mask_weight,
            dice_weight=self.dice_weight,
            projection_weight=projection_weight,
            match_class_weight=either(self.match_class_weight, self.class_weight),
            match_mask_weight=either(self.match_mask_weight, self.mask_weight),
            match_dice_weight=either(self.match_dice_weight, self.dice_weight),
            match_projection_weight=either(self.match_projection_weight, projection_weight),
            no_object_weight=self.no_object_weight,
        )


def mask_term_weights(
    mask: MaskRecipeConfig, *, projection_weight: float, datasets: Collection[str]
) -> tuple[TermWeights, dict[str, TermWeights]]:
    """The default weights and each ``recipe.mask.per_dataset`` key's, validated.

    Args:
        mask: ``recipe.mask``.
        projection_weight: The box projection loss weight (``recipe.dataseg.projection_weight``).
        datasets: The run's declared datasets (empty: not known, names are not checked).
    Raises:
        ValueError: An unknown ``mask_loss``, ``aux_matching``, dataset or term name, or a
            negative weight.
    """
    if mask.mask_loss not in MASK_LOSSES:
        raise ValueError(
            f"recipe.mask.mask_loss must be one of {list(MASK_LOSSES)}, got {mask.mask_loss!r}."
        )
    if mask.aux_matching not in AUX_MATCHINGS:
        raise ValueError(
            f"recipe.mask.aux_matching must be one of {list(AUX_MATCHINGS)}, got "
            f"{mask.aux_matching!r}: per_layer matches every decoder layer on its own "
            "(Mask2Former), last reuses the final layer's matches (DaTaSeg App. E)."
        )
    try:
        base = mask.term_weights(projection_weight=projection_weight)
    except ValueError as error:
        raise ValueError(f"recipe.mask: {error}") from None
    unknown = sorted(set(mask.per_dataset) - set(datasets) - set(KIND_KEYS))
    if unknown and datasets:
        raise ValueError(
            f"recipe.mask.per_dataset names unknown datasets {unknown}; use a declared dataset "
            f"({', '.join(sorted(datasets))}) or a kind ({', '.join(KIND_KEYS)})."
        )
    per_dataset = override_weights(base, mask.per_dataset, where="recipe.mask.per_dataset")
    return base, per_dataset


def mask_recipe_arguments(
    mask: MaskRecipeConfig,
    *,
    context: RecipeContext,
    text_attention: bool,
    projection_weight: float,
    decoding_order: str = "visual-text",
    num_datasets: int = 0,
    dataset_queries: int = 0,
    dataset_class_heads: bool = False,
) -> dict:
    """The network, classifier, criterion and post-processing settings both recipes share:
    keyword arguments of :class:`~babelseg.recipes.mask_common.MaskRecipe`.

    Args:
        mask: ``recipe.mask``.
        context: Label spaces (thing flags), embedding dim, the ``model:`` section, temperature.
        text_attention: Category-guided decoding (text cross-attention in the query decoder).
        projection_weight: Box projection loss weight (boxes-only data).
        decoding_order: ``visual-text`` or ``text-visual`` (with ``text_attention``).
        num_datasets / dataset_queries / dataset_class_heads: The query decoder's
            dataset-specific modules (DaTaSeg's ablation, ``recipe.dataseg``; none by default).
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
        num_datasets=num_datasets,
        dataset_queries=dataset_queries,
        dataset_class_heads=dataset_class_heads,
    )
    base, per_dataset = mask_term_weights(
        mask, projection_weight=projection_weight, datasets=context.label_spaces
    )
    matcher = HungarianMatcher(
        class_weight=base.match_class_weight,
        mask_weight=base.match_mask_weight,
        dice_weight=base.match_dice_weight,
        projection_weight=base.match_projection_weight,
        num_points=mask.num_points,
        mask_cost=mask.mask_loss,
        focal_alpha=mask.focal_alpha,
        focal_gamma=mask.focal_gamma,
    )
    criterion = MaskCriterion(
        matcher=matcher,
        no_object_weight=base.no_object_weight,
        class_weight=base.class_weight,
        mask_weight=base.mask_weight,
        dice_weight=base.dice_weight,
        projection_weight=base.projection_weight,
        num_points=mask.num_points,
        oversample_ratio=mask.oversample_ratio,
        importance_sample_ratio=mask.importance_sample_ratio,
        mask_loss=mask.mask_loss,
        focal_alpha=mask.focal_alpha,
        focal_gamma=mask.focal_gamma,
        aux_matching=mask.aux_matching,
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
        "term_weights": per_dataset,
        "thing_flags": {n: s.thing_mask.tolist() for n, s in context.label_spaces.items()},
    }
