"""The ``dataseg`` recipe (DaTaSeg.txt): one universal representation (mask proposals with class
embeddings) for semantic, panoptic and instance data, every parameter shared.

- Classifiers (section 3.4): the frozen text embeddings of each dataset's classes plus ONE
  learnable background embedding shared by all datasets (scaled cosine similarity).
- MERGE (section 3.2, eq. 1-2; :func:`~babelseg.matching.merge.merge_proposals`): proposals
  predicting the same class become one (max of mask logits, mean of class logits) before
  matching and at inference: the stuff classes for panoptic data, every class for semantic data,
  none for instance and boxes-only data.
- Weak box supervision (section 3.3, eq. 3): boxes-only datasets are matched and trained with the
  box projection loss (``projection_weight``) instead of the mask losses.
- Co-training (section 3.5): one dataset per iteration (``data.sampling=per_dataset``) with
  per-dataset sampling ratios (``data.ratios``) and per-dataset loss weights
  (``dataset_loss_weights``).
- Losses and matching (eq. 4-5, Table 10, App. F): CE for classes, focal + dice for masks, the
  projection loss for boxes, each term with its own loss and matching weight per dataset
  (``recipe.mask`` and ``recipe.mask.per_dataset``; the step's dataset picks its weights) and
  background weight 0.05. The recipe's defaults are LMSeg's (``recipe.mask``); the paper's
  per-dataset values are set in ``configs/dataseg.yaml``, mapped onto SynthWorld's datasets.
  The paper computes them on full masks at stride 4; ours on uncertainty-sampled points.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from babelseg.data.sample import Annotation, Task
from babelseg.recipes.base import RecipeContext
from babelseg.recipes.mask_common import MaskRecipe
from babelseg.recipes.mask_config import MaskRecipeConfig, mask_recipe_arguments


@dataclass
class DaTaSegConfig:
    """``dataseg`` settings (DaTaSeg.txt).

    Attributes:
        merge: MERGE same-class proposals (stuff for panoptic, all for semantic).
        projection_weight: Weight of the box projection loss for boxes-only datasets.
        dataset_loss_weights: ``{dataset: weight}`` (1 for datasets not named).
    """

    merge: bool = True
    projection_weight: float = 5.0
    dataset_loss_weights: dict[str, float] = field(default_factory=dict)


class DaTaSegRecipe(MaskRecipe):
    """DaTaSeg: MERGE per task, frozen text classifiers, shared background, projection loss.

    Args:
        merge: Apply MERGE (False: the ablation without it).
        **kwargs: :class:`~babelseg.recipes.mask_common.MaskRecipe` arguments.
    """

    name = "dataseg"
    supported_annotations = frozenset({Annotation.CLEAN, Annotation.NOISY, Annotation.BOXES})
    forward_takes_texts = False

    def __init__(self, *, merge: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.merge = merge

    def merge_classes(
        self, task: Task, is_thing: torch.Tensor, *, box_only: bool = False
    ) -> torch.Tensor | None:
        """``bool[K]``: all classes for semantic, the stuff classes for panoptic, None for
        instance / boxes-only data (and without MERGE)."""
        if not self.merge or box_only or task == Task.INSTANCE:
            return None
        if task == Task.PANOPTIC:
            return ~is_thing.to(torch.bool)
        return torch.ones_like(is_thing, dtype=torch.bool)


def build_dataseg_recipe(
    section: DaTaSegConfig, *, mask: MaskRecipeConfig, context: RecipeContext
) -> DaTaSegRecipe:
    """The ``dataseg`` recipe (DaTaSeg.txt); its query decoder never reads the texts."""
    unknown = sorted(set(section.dataset_loss_weights) - set(context.label_spaces))
    if unknown and context.label_spaces:
        raise ValueError(
            f"recipe.dataseg.dataset_loss_weights names unknown datasets {unknown}; declared: "
            f"{sorted(context.label_spaces)}."
        )
    kwargs = mask_recipe_arguments(
        mask, context=context, text_attention=False, projection_weight=section.projection_weight
    )
    return DaTaSegRecipe(
        merge=section.merge,
        dataset_loss_weights={k: float(v) for k, v in section.dataset_loss_weights.items()},
        **kwargs,
    )
