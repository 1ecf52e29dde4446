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
"""

from __future__ import annotations

import torch

from babelseg.data.sample import Annotation, Task
from babelseg.recipes.mask_common import MaskRecipe


class DaTaSegRecipe(MaskRecipe):
    """DaTaSeg: MERGE per task, frozen text classifiers, shared background, projection loss.

    Args:
        merge: Apply MERGE (False: the ablation without it).
        **kwargs: :class:`~babelseg.recipes.mask_common.MaskRecipe` arguments.
    """

    name = "dataseg"
    supported_annotations = {Annotation.CLEAN, Annotation.NOISY, Annotation.BOXES}
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
