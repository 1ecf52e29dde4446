"""The weights of one dataset's set-loss and matching-cost terms (LMSeg eq. 3-5; DaTaSeg eq. 4-5
and Table 10), and their per-dataset overrides.

A :class:`TermWeights` holds every term by the name the ``recipe.mask`` config uses for it, so a
per-dataset override ``{key: {term: value}}`` (:func:`override_weights`) replaces fields by name
and an unknown name is an error that lists the valid ones. A key is a dataset name or one of
:data:`KIND_KEYS`: DaTaSeg Table 10 has one row per kind of supervision (ADE semantic, COCO
panoptic, Objects365 boxes), so a config keyed by kind applies to any world's datasets
(:func:`weights_for` picks a dataset's own entry first, then its kind's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from babelseg.matching.costs import CostWeights


@dataclass(frozen=True)
class TermWeights:
    """Loss weights (the lambda's), matching-cost weights (the mu's) and the no-object weight.

    Attributes:
        class_weight: Classification cross-entropy.
        mask_weight: Binary mask loss (sigmoid CE or focal, ``recipe.mask.mask_loss``).
        dice_weight: Dice loss.
        projection_weight: Box projection loss (box-only targets).
        match_class_weight / match_mask_weight / match_dice_weight / match_projection_weight:
            The same terms in the Hungarian matching cost.
        no_object_weight: Cross-entropy weight of the "no object" (background) class.
    """

    class_weight: float
    mask_weight: float
    dice_weight: float
    projection_weight: float
    match_class_weight: float
    match_mask_weight: float
    match_dice_weight: float
    match_projection_weight: float
    no_object_weight: float

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not float(value) >= 0:
                raise ValueError(f"Loss term {field.name} must be >= 0, got {value}.")

    def loss_weights(self) -> dict[str, float]:
        """``{loss_class, loss_mask, loss_dice, loss_projection}`` -> weight."""
        return {
            "loss_class": self.class_weight,
            "loss_mask": self.mask_weight,
            "loss_dice": self.dice_weight,
            "loss_projection": self.projection_weight,
        }

    def cost_weights(self) -> CostWeights:
        """The matching-cost weights."""
        return CostWeights(
            class_weight=self.match_class_weight,
            mask_weight=self.match_mask_weight,
            dice_weight=self.match_dice_weight,
            projection_weight=self.match_projection_weight,
        )


TERM_NAMES = tuple(f.name for f in fields(TermWeights))
"""Term names a per-dataset override may set."""

KIND_KEYS = ("semantic", "panoptic", "instance", "boxes")
"""Override keys that stand for every dataset of a task (``boxes``: boxes-only data, whatever its
task)."""


def weights_for(
    overrides: Mapping[str, TermWeights],
    default: TermWeights,
    *,
    dataset: str,
    task: str,
    box_only: bool,
) -> TermWeights:
    """A dataset's weights: its own entry, else ``boxes`` for boxes-only data, else its task's
    entry (``semantic`` / ``panoptic`` / ``instance``), else ``default``."""
    for key in (dataset, "boxes" if box_only else None, task):
        if key is not None and key in overrides:
            return overrides[key]
    return default


def override_weights(
    base: TermWeights, per_dataset: Mapping[str, Mapping[str, float]], *, where: str
) -> dict[str, TermWeights]:
    """Each named dataset's weights: ``base`` with its overridden terms replaced.

    Args:
        base: The weights of datasets without overrides.
        per_dataset: ``{dataset: {term: value}}``.
        where: The config key holding ``per_dataset`` (for error messages).
    Raises:
        ValueError: An unknown term name (the message lists the valid ones) or a negative value.
    """
    out = {}
    for dataset, terms in per_dataset.items():
        unknown = sorted(set(terms) - set(TERM_NAMES))
        if unknown:
            raise ValueError(
                f"{where}.{dataset} names unknown loss terms {unknown}; valid terms: "
                f"{', '.join(TERM_NAMES)}."
            )
        try:
            out[dataset] = replace(base, **{k: float(v) for k, v in terms.items()})
        except ValueError as error:
            raise ValueError(f"{where}.{dataset}: {error}") from None
    return out
