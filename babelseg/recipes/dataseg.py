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
- Losses and matching (eq. 4-5, Table 10, App. F): CE for classes, focal + dice for masks, the
  projection loss for boxes, each term with its own loss and matching weight per dataset
  (``recipe.mask`` and ``recipe.mask.per_dataset``; the step's dataset picks its weights) and
  background weight 0.05. The recipe's defaults are LMSeg's (``recipe.mask``); the paper's
  per-dataset values are set in ``configs/dataseg.yaml``, mapped onto SynthWorld's datasets.
  The paper computes them on full masks at stride 4; ours on uncertainty-sampled points.
- Deep supervision (App. E): the paper computes the Hungarian matching once, on the last decoder
  layer's predictions, and uses its (query, target) indices for every auxiliary layer's losses
  (``recipe.mask.aux_matching: last``; under MERGE the auxiliary layers are merged by the last
  layer's arg-max classes so that the indices mean the same proposals: our choice, App. E does
  not say how the two meet). OUR deviation, the default in ``configs/dataseg.yaml``: every layer
  matched on its own (``per_layer``, Mask2Former's), chosen by the evidence row "last-layer
  matching (the paper) vs per-layer matching" (``benchmarks/results/evidence/dataseg.md``:
  -7.4 [-10.3, -4.4] for last-layer matching, 3 seeds).
- Co-training (section 3.5, App. F): one dataset per iteration (``data.sampling=per_dataset``)
  with per-dataset sampling ratios (``data.ratios``), loss weights (``dataset_loss_weights``)
  and learning-rate multipliers (``lr_multipliers``: the step's learning rate times its
  dataset's factor). MERGE and the multipliers stay on as the paper's method although their
  evidence rows contradict them at our 300-step budget (MERGE -7.2 [-10.9, -3.6], multipliers
  -5.9 [-6.2, -5.5], ``benchmarks/results/evidence/dataseg.md``); dropping both is not measured.
- Post-processing (App. F): panoptic proposals kept above a confidence of 0.8 (0.85 for COCO
  panoptic: ``panoptic_thresholds``), segments under 4 pixels dropped (panoptic and instance),
  at most 100 instances per image at a score threshold of 0.0. These replace
  ``recipe.mask.object_mask_threshold`` / ``instance_top_k``, which this recipe refuses.
- Dataset-specific modules (section 4.7, supp. Fig. 8, Tables 5, 7, 8, 9): the paper's ablation
  alternative, off by default (the paper's method shares every parameter). ``dataset_queries``
  adds ``Q_d`` learnable queries per training dataset to the decoder's N shared ones (each image
  its own dataset's); ``dataset_classification`` gives each dataset its own class-embedding head
  and learnable background. They work with either ``data.sampling`` (each image of a mixed batch
  uses its own dataset's; :mod:`babelseg.models.heads.dataset_modules`). Inference on a training
  dataset uses its modules; on any other vocabulary those of ``transfer_dataset``, or, unset, it
  is an error (the paper: which modules to use there is undefined).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from babelseg.data.collate import Batch
from babelseg.data.sample import Annotation, Task
from babelseg.models.heads.dataset_modules import DatasetIndex, DatasetTextClassifier
from babelseg.models.outputs import MaskOutput
from babelseg.recipes.base import LossResult, RecipeContext
from babelseg.recipes.mask_common import MaskRecipe
from babelseg.recipes.mask_config import MaskRecipeConfig, mask_recipe_arguments


@dataclass
class DaTaSegConfig:
    """``dataseg`` settings (DaTaSeg.txt).

    Attributes:
        merge: MERGE same-class proposals (stuff for panoptic, all for semantic).
        projection_weight: Weight of the box projection loss for boxes-only datasets.
        dataset_loss_weights: ``{dataset: weight}`` (1 for datasets not named).
        lr_multipliers: ``{dataset: factor}``: a step on that dataset's batch uses the
            scheduled learning rate times the factor (1 for datasets not named); needs
            ``data.sampling=per_dataset``. App. F: ADE x3, COCO x5, Objects365 x2.
        panoptic_threshold: Panoptic output: minimum class confidence of a kept proposal
            (App. F: 0.8, its ADE panoptic value).
        panoptic_thresholds: ``{dataset: threshold}`` for datasets with their own (App. F:
            0.85 for COCO panoptic).
        min_segment_area: Panoptic and instance output: segments of fewer pixels are dropped.
        instance_top_k: Instance output: at most this many masks per image.
        instance_score_threshold: Instance output: only masks scoring above it.
        dataset_queries: ``Q_d``, learnable queries per training dataset fed to the decoder
            besides the ``model.num_queries`` shared ones (supp. Fig. 8, Table 7 tries 0, 10,
            20, 30 with 100 shared queries; the paper does not say which Table 5 used). 0: none,
            the paper's method.
        dataset_classification: A class-embedding head and a learnable background embedding per
            training dataset instead of the shared ones (supp. Table 8). False: shared, the
            paper's method.
        transfer_dataset: With dataset-specific modules, the training dataset whose modules
            serve any other vocabulary (held-out datasets, free label lists); None: predicting
            such a vocabulary is an error. OUR setting: the paper leaves the choice undefined.
    """

    merge: bool = True
    projection_weight: float = 5.0
    dataset_loss_weights: dict[str, float] = field(default_factory=dict)
    lr_multipliers: dict[str, float] = field(default_factory=dict)
    panoptic_threshold: float = 0.8
    panoptic_thresholds: dict[str, float] = field(default_factory=dict)
    min_segment_area: int = 4
    instance_top_k: int = 100
    instance_score_threshold: float = 0.0
    dataset_queries: int = 0
    dataset_classification: bool = False
    transfer_dataset: str | None = None


class DaTaSegRecipe(MaskRecipe):
    """DaTaSeg: MERGE per task, frozen text classifiers, shared background, projection loss.

    Args:
        merge: Apply MERGE (False: the ablation without it).
        lr_multipliers: ``{dataset: factor}`` of the step's learning rate.
        dataset_index: The rows of the model's dataset-specific modules (None: it has none);
            :meth:`forward` then needs each image's dataset.
        **kwargs: :class:`~babelseg.recipes.mask_common.MaskRecipe` arguments.
    """

    name = "dataseg"
    supported_annotations = frozenset({Annotation.CLEAN, Annotation.NOISY, Annotation.BOXES})
    forward_takes_texts = False

    def __init__(
        self,
        *,
        merge: bool = True,
        lr_multipliers: Mapping[str, float] | None = None,
        dataset_index: DatasetIndex | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.merge = merge
        self.lr_multipliers = {k: float(v) for k, v in (lr_multipliers or {}).items()}
        self.dataset_index = dataset_index
        self.forward_takes_datasets = dataset_index is not None

    def forward(
        self,
        images: torch.Tensor,
        texts: Sequence[torch.Tensor] | None = None,
        datasets: Sequence[str | None] | None = None,
    ) -> MaskOutput:
        """``images float[B, 3, H, W]`` -> MaskOutput (``mask_logits float[B, N + Q_d,
        ceil(H/4), ceil(W/4)]``); ``datasets``: each image's training dataset (None or another
        name: ``transfer_dataset``'s modules), needed with dataset-specific modules only.

        Raises:
            ValueError: dataset-specific modules without one dataset per image, or an image of
                an untrained vocabulary without ``transfer_dataset``.
        """
        rows = None
        if self.dataset_index is not None:
            if datasets is None or len(datasets) != images.shape[0]:
                got = None if datasets is None else len(datasets)
                raise ValueError(
                    "The dataseg model has dataset-specific modules: forward needs each "
                    f"image's dataset (datasets=, {images.shape[0]} names), got {got}."
                )
            rows = self.dataset_index.rows(datasets, images.device)
        return self.model(images, None if texts is None else list(texts), rows)

    def extra_state(self) -> dict:
        """The datasets of the dataset-specific modules' rows, in order (none without)."""
        return (
            {} if self.dataset_index is None else {"module_datasets": self.dataset_index.datasets}
        )

    def load_extra_state(self, state: Mapping) -> None:
        """Check the checkpoint's module rows belong to the datasets this recipe was built for.

        Raises:
            ValueError: they were saved for other datasets or another order.
        """
        saved = state.get("module_datasets")
        if saved is not None and self.dataset_index is not None:
            if list(saved) != self.dataset_index.datasets:
                raise ValueError(
                    f"The checkpoint's dataset-specific modules are for {list(saved)} but the "
                    f"recipe was built for {self.dataset_index.datasets}; rebuild it with the "
                    "checkpoint's train_datasets, in order."
                )

    def lr_multiplier(self, datasets: Sequence[str]) -> float:
        """The factor of the batch's one dataset (1 when it has none).

        Raises:
            ValueError: the batch mixes datasets with different factors (the builder refuses
                multipliers without ``data.sampling=per_dataset``, so only a direct caller can).
        """
        factors = {self.lr_multipliers.get(name, 1.0) for name in datasets}
        if len(factors) > 1:
            raise ValueError(
                f"recipe.dataseg.lr_multipliers: a batch mixes datasets {sorted(set(datasets))} "
                "with different factors; use data.sampling=per_dataset."
            )
        return factors.pop() if factors else 1.0

    def loss(
        self,
        output: MaskOutput,
        batch: Batch,
        texts: Mapping[str, torch.Tensor],
        *,
        normalisers: Mapping[str, torch.Tensor | float],
    ) -> LossResult:
        """:meth:`MaskRecipe.loss`; with learning-rate multipliers the run log also gets the
        step's factor (``lr_multiplier``)."""
        result = super().loss(output, batch, texts, normalisers=normalisers)
        if self.lr_multipliers:
            result.logs["lr_multiplier"] = self.lr_multiplier(batch.datasets)
        return result

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


def _check_dataset_names(section: DaTaSegConfig, context: RecipeContext) -> None:
    """Every per-dataset setting names declared datasets (skipped without label spaces, as when
    a checkpoint is rebuilt for inference)."""
    if not context.label_spaces:
        return
    for key in ("dataset_loss_weights", "lr_multipliers", "panoptic_thresholds"):
        unknown = sorted(set(getattr(section, key)) - set(context.label_spaces))
        if unknown:
            raise ValueError(
                f"recipe.dataseg.{key} names unknown datasets {unknown}; declared: "
                f"{sorted(context.label_spaces)}. Name datasets of data.datasets_yaml."
            )


def _check_settings(section: DaTaSegConfig, mask: MaskRecipeConfig, sampling: str) -> None:
    """Learning-rate multipliers need one dataset per step; post-processing values in range;
    ``recipe.mask``'s post-processing keys, which this recipe does not read, left unset."""
    bad = {k: v for k, v in section.lr_multipliers.items() if not (math.isfinite(v) and v > 0)}
    if bad:
        raise ValueError(f"recipe.dataseg.lr_multipliers must be positive, got {bad}.")
    if section.lr_multipliers and sampling != "per_dataset":
        raise ValueError(
            "recipe.dataseg.lr_multipliers multiply the learning rate of a step by its dataset's "
            f"factor, which needs one dataset per step: set data.sampling=per_dataset (it is "
            f"'{sampling}'), or remove the multipliers."
        )
    thresholds = {"panoptic_threshold": section.panoptic_threshold, **section.panoptic_thresholds}
    for name, value in thresholds.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"recipe.dataseg panoptic threshold of {name} must lie in [0, 1].")
    queries = section.dataset_queries
    if isinstance(queries, bool) or not isinstance(queries, int) or queries < 0:
        raise ValueError(
            f"recipe.dataseg.dataset_queries must be an integer >= 0 (queries per training "
            f"dataset; 0: none), got {queries!r}."
        )
    if section.transfer_dataset is not None and not (queries or section.dataset_classification):
        raise ValueError(
            "recipe.dataseg.transfer_dataset only chooses among dataset-specific modules: set "
            "dataset_queries > 0 or dataset_classification=true, or remove it."
        )
    if section.min_segment_area < 0 or section.instance_top_k < 1:
        raise ValueError(
            "recipe.dataseg.min_segment_area must be >= 0 and instance_top_k >= 1, got "
            f"{section.min_segment_area} and {section.instance_top_k}."
        )
    defaults = MaskRecipeConfig()
    for key, own in (("object_mask_threshold", "panoptic_threshold"), ("instance_top_k",) * 2):
        if getattr(mask, key) != getattr(defaults, key):
            raise ValueError(
                f"recipe.mask.{key} is not read by the dataseg recipe, whose post-processing "
                f"is DaTaSeg's: set recipe.dataseg.{own} instead."
            )


def build_dataseg_recipe(
    section: DaTaSegConfig, *, mask: MaskRecipeConfig, context: RecipeContext
) -> DaTaSegRecipe:
    """The ``dataseg`` recipe (DaTaSeg.txt); its query decoder never reads the texts.

    Raises:
        ValueError: a per-dataset setting names an undeclared dataset, learning-rate
            multipliers without ``data.sampling=per_dataset``, a value out of range, or
            dataset-specific modules without training datasets (``context.train_datasets``)
            or with a ``transfer_dataset`` not among them.
    """
    _check_dataset_names(section, context)
    _check_settings(section, mask, context.sampling)
    index = None
    if section.dataset_queries or section.dataset_classification:
        index = DatasetIndex(
            datasets=context.train_datasets, transfer_dataset=section.transfer_dataset
        )
    kwargs = mask_recipe_arguments(
        mask,
        context=context,
        text_attention=False,
        projection_weight=section.projection_weight,
        num_datasets=0 if index is None else len(index.datasets),
        dataset_queries=section.dataset_queries,
        dataset_class_heads=section.dataset_classification,
    )
    if section.dataset_classification:
        kwargs["classifier"] = DatasetTextClassifier(
            index=index,
            embed_dim=context.embed_dim,
            temperature=context.temperature,
            learn_temperature=context.learn_temperature,
        )
    kwargs.update(
        object_mask_threshold=section.panoptic_threshold,
        instance_top_k=section.instance_top_k,
        dataset_object_mask_thresholds=dict(section.panoptic_thresholds),
        min_segment_area=section.min_segment_area,
        instance_score_threshold=section.instance_score_threshold,
    )
    return DaTaSegRecipe(
        merge=section.merge,
        lr_multipliers=section.lr_multipliers,
        dataset_index=index,
        dataset_loss_weights={k: float(v) for k, v in section.dataset_loss_weights.items()},
        **kwargs,
    )
