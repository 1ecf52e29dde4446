"""What the mask-classification recipes (``lmseg``, ``dataseg``) share.

- :func:`batch_targets`: the per-image :class:`~babelseg.matching.targets.MaskTargets` of a
  collated batch (semantic maps -> one mask per class present; panoptic / instance masks
  without crowd; boxes-only data -> boxes on the mask-logit grid);
- :class:`MaskRecipe`: the recipe skeleton both recipes subclass: forward with texts, the set
  losses of every decoder layer (per dataset for the logs), and inference for semantic,
  panoptic and instance segmentation; subclasses say how texts become step texts and which
  classes are MERGEd (DaTaSeg) for a task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from babelseg.data.collate import Batch
from babelseg.data.sample import Annotation, Sample, Task
from babelseg.labels.space import IGNORE_INDEX
from babelseg.losses.mask_criterion import LayerPrediction, MaskCriterion, target_counts
from babelseg.matching.merge import merge_proposals
from babelseg.matching.targets import MaskTargets
from babelseg.models.heads.text_classifier import TextClassifier
from babelseg.models.mask_model import OUTPUT_STRIDE, MaskClassificationModel
from babelseg.models.outputs import MaskOutput
from babelseg.models.postprocess import instance_masks, panoptic_segments
from babelseg.models.segments import InstancePrediction, PanopticPrediction
from babelseg.recipes.base import LossResult, Recipe, group_by_dataset


# ---------------------------------------------------------------------------- targets
def _box_targets(sample: Sample, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-crowd boxes of at least 1 px after clipping to ``size`` (image pixels), and their
    classes: ``(float[T, 4], int64[T])``."""
    if sample.boxes is None or sample.classes is None or len(sample.boxes) == 0:
        return torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)
    boxes = torch.as_tensor(np.asarray(sample.boxes), dtype=torch.float32).reshape(-1, 4)
    classes = torch.as_tensor(np.asarray(sample.classes), dtype=torch.long)
    keep = torch.ones(len(boxes), dtype=torch.bool)
    if sample.iscrowd is not None:
        keep &= ~torch.as_tensor(np.asarray(sample.iscrowd), dtype=torch.bool)
    h, w = size
    clipped = torch.minimum(boxes.clamp(min=0.0), torch.tensor([w, h, w, h], dtype=torch.float32))
    keep &= ((clipped[:, 2] - clipped[:, 0]) >= 1.0) & ((clipped[:, 3] - clipped[:, 1]) >= 1.0)
    return clipped[keep], classes[keep]


def sample_targets(
    sample: Sample, semantic: torch.Tensor | None, size: tuple[int, int]
) -> MaskTargets:
    """The targets of one collated image.

    Args:
        sample: The augmented sample (masks, boxes, classes, crowd flags, annotation kind).
        semantic: ``int64[H, W]`` its row of ``Batch.semantic`` (padded, 255 = ignore), used for
            semantic datasets.
        size: ``(H, W)`` of the padded batch.
    Returns:
        Semantic data: one mask per class present. Panoptic / instance data: the non-crowd,
        non-empty masks. Boxes-only data: ``box_only`` targets with the non-crowd boxes on the
        stride-4 mask-logit grid. Masks are padded to a multiple of 4 so that they cover the
        same extent as the mask logits.
    """
    h, w = size
    grid = (-(-h // OUTPUT_STRIDE) * OUTPUT_STRIDE, -(-w // OUTPUT_STRIDE) * OUTPUT_STRIDE)
    if sample.annotation == Annotation.BOXES:
        boxes, classes = _box_targets(sample, size)
        return MaskTargets(classes=classes, boxes=boxes / OUTPUT_STRIDE, box_only=True)
    if sample.task == Task.SEMANTIC or sample.masks is None:
        if semantic is None:
            raise ValueError(
                f"{sample.path or sample.dataset}: a {sample.task.value} sample without masks "
                "needs a semantic map."
            )
        present = torch.unique(semantic)
        classes = present[present != IGNORE_INDEX].cpu()
        masks = semantic.cpu()[None] == classes[:, None, None]
    else:
        masks = torch.from_numpy(np.asarray(sample.masks, dtype=bool))
        classes = torch.as_tensor(np.asarray(sample.classes), dtype=torch.long)
        keep = masks.flatten(1).any(1)
        if sample.iscrowd is not None:
            keep &= ~torch.as_tensor(np.asarray(sample.iscrowd), dtype=torch.bool)
        masks, classes = masks[keep], classes[keep]
    out = torch.zeros((len(classes), *grid), dtype=torch.bool)
    out[:, : masks.shape[1], : masks.shape[2]] = masks
    return MaskTargets(classes=classes, masks=out)


def batch_targets(batch: Batch) -> list[MaskTargets]:
    """:func:`sample_targets` of every image of a batch (on the CPU)."""
    size = (int(batch.images.shape[-2]), int(batch.images.shape[-1]))
    return [
        sample_targets(s, None if batch.semantic is None else batch.semantic[i], size)
        for i, s in enumerate(batch.samples)
    ]


# ---------------------------------------------------------------------------- recipe
class MaskRecipe(Recipe):
    """Mask proposals + class embeddings classified against texts: training and inference.

    Subclasses set ``name`` and ``supported_annotations`` and may override
    :meth:`merge_classes` (default: no MERGE) and :meth:`step_texts`.

    Args:
        model: The mask-classification network (its query decoder may use texts).
        classifier: Texts -> class logits.
        criterion: Matching and set losses.
        object_mask_threshold: Panoptic / instance: minimum class probability of a kept query.
        overlap_threshold: Panoptic: minimum share of a query's mask left after overlaps.
        instance_top_k: Instance: masks kept per image.
        dataset_loss_weights: ``{dataset: weight}`` multiplying each image's losses (1 for
            datasets not named).
        thing_flags: ``{dataset: [is_thing per class]}`` of the training label spaces (MERGE of
            stuff classes on panoptic data).
    """

    name = "mask"
    supported_annotations = frozenset({Annotation.CLEAN, Annotation.NOISY})
    predicts_segments = True
    forward_takes_texts = True

    def __init__(
        self,
        *,
        model: MaskClassificationModel,
        classifier: TextClassifier,
        criterion: MaskCriterion,
        object_mask_threshold: float = 0.5,
        overlap_threshold: float = 0.8,
        instance_top_k: int = 50,
        dataset_loss_weights: Mapping[str, float] | None = None,
        thing_flags: Mapping[str, Sequence[bool]] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.classifier = classifier
        self.criterion = criterion
        self.object_mask_threshold = object_mask_threshold
        self.overlap_threshold = overlap_threshold
        self.instance_top_k = instance_top_k
        self.dataset_loss_weights = dict(dataset_loss_weights or {})
        self.thing_flags = {k: [bool(f) for f in v] for k, v in (thing_flags or {}).items()}

    # ------------------------------------------------------------------ hooks
    def merge_classes(
        self, task: Task, is_thing: torch.Tensor, *, box_only: bool = False
    ) -> torch.Tensor | None:
        """``bool[K]`` classes to MERGE for a task (None: no MERGE). Default: none."""
        return None

    # ------------------------------------------------------------------ network
    def forward(
        self, images: torch.Tensor, texts: Sequence[torch.Tensor] | None = None
    ) -> MaskOutput:
        """``images float[B, 3, H, W]`` (+ per image ``float[K_b, D]`` texts) -> MaskOutput with
        ``mask_logits float[B, Q, ceil(H/4), ceil(W/4)]``."""
        return self.model(images, None if texts is None else list(texts))

    def _proposals(
        self,
        mask_logits: torch.Tensor,
        class_logits: torch.Tensor,
        merge: torch.Tensor | None,
        *,
        drop_absent: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One image's ``float[Q, h, w]`` / ``float[Q, K + 1]`` after MERGE (when ``merge``)."""
        if merge is None or not bool(merge.any()):
            return mask_logits, class_logits
        merged = merge_proposals(mask_logits, class_logits, merge)
        if drop_absent:
            keep = merged.present
            return merged.mask_logits[keep], merged.class_logits[keep]
        return merged.mask_logits, merged.class_logits

    # ------------------------------------------------------------------ training
    def loss_counts(self, batch: Batch) -> dict[str, float]:
        """This process's normalisers: ``num_images``, ``num_masks``, ``num_boxes``."""
        return target_counts(batch_targets(batch))

    def _layer(
        self,
        layer: MaskOutput,
        idx: list[int],
        texts: Sequence[torch.Tensor],
        merges: Sequence[torch.Tensor | None],
    ) -> LayerPrediction:
        logits = self.classifier.per_image(layer.class_embeddings[idx], texts)
        masks, classes = [], []
        for j, b in enumerate(idx):
            m, c = self._proposals(layer.mask_logits[b], logits[j], merges[j], drop_absent=False)
            masks.append(m)
            classes.append(c)
        return LayerPrediction(class_logits=classes, mask_logits=masks)

    def loss(
        self,
        output: MaskOutput,
        batch: Batch,
        texts: Mapping[str, torch.Tensor],
        *,
        normalisers: Mapping[str, torch.Tensor | float],
    ) -> LossResult:
        """Matched classification CE + point-sampled mask CE/dice (+ box projection for
        boxes-only data) on the final and every auxiliary decoder layer, each image in its own
        label space; the sums are divided by the all-reduced :meth:`loss_counts`."""
        targets = batch_targets(batch)
        layers = [output, *(output.aux or [])]
        device = output.mask_logits.device
        total_losses: dict[str, torch.Tensor] = {}
        per_dataset: dict[str, torch.Tensor] = {}
        for name, idx in group_by_dataset(batch.datasets).items():
            text = texts[name]
            sample = batch.samples[idx[0]]
            merge = self.merge_classes(
                sample.task,
                self._is_thing(name, len(text), device),
                box_only=sample.annotation == Annotation.BOXES,
            )
            group_targets = [targets[b] for b in idx]
            preds = [
                self._layer(layer, idx, [text] * len(idx), [merge] * len(idx)) for layer in layers
            ]
            weight = float(self.dataset_loss_weights.get(name, 1.0))
            losses = self.criterion(
                preds,
                group_targets,
                image_weights=torch.full((len(idx),), weight, device=device),
            )
            counts = target_counts(group_targets)
            per_dataset[name] = self.criterion.total(losses, counts).detach()
            for key, value in losses.items():
                if key.startswith("loss_"):
                    total_losses[key] = total_losses.get(key, 0.0) + value
        norms = {k: float(v) for k, v in normalisers.items()}
        total = self.criterion.total(total_losses, norms)
        divisor = {"loss_class": "num_images", "loss_projection": "num_boxes"}
        logs = {  # per layer, each divided by its normaliser, unweighted
            k: float(v.detach()) / max(norms[divisor.get(k, "num_masks")], 1.0) / len(layers)
            for k, v in total_losses.items()
        }
        logs["temperature"] = float(1.0 / self.classifier.temperature().detach())
        return LossResult(total=total, per_dataset=per_dataset, logs=logs)

    def _is_thing(self, dataset: str, num_classes: int, device: torch.device) -> torch.Tensor:
        """``bool[K]`` thing flags of a training dataset's label space (all False if unknown)."""
        flags = self.thing_flags.get(dataset)
        if flags is None or len(flags) != num_classes:
            return torch.zeros(num_classes, dtype=torch.bool, device=device)
        return torch.as_tensor(flags, dtype=torch.bool, device=device)

    # ------------------------------------------------------------------ inference
    def _image_proposals(
        self, output: MaskOutput, text: torch.Tensor, b: int, merge: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.classifier(output.class_embeddings[b], text)
        return self._proposals(output.mask_logits[b], logits, merge, drop_absent=True)

    def semantic_logits(
        self,
        output: MaskOutput,
        text_embeddings: torch.Tensor,
        *,
        dataset: str | None = None,
        pixel_major: bool = False,
    ) -> torch.Tensor:
        """Semantic scores ``sum_q p_q(k) * sigmoid(m_q)`` at the mask resolution.

        Args:
            output: The model output for B images.
            text_embeddings: ``float[K, D]`` texts of the label space asked for.
            dataset: Unused: classes come from the texts alone.
            pixel_major: Return ``[B, h, w, K]`` instead.
        Returns:
            ``float[B, K, h, w]`` (h, w = ceil(H/4), ceil(W/4)).
        """
        merge = self.merge_classes(
            Task.SEMANTIC,
            torch.zeros(len(text_embeddings), dtype=torch.bool, device=text_embeddings.device),
        )
        out = []
        for b in range(output.mask_logits.shape[0]):
            masks, logits = self._image_proposals(output, text_embeddings, b, merge)
            prob = logits.float().softmax(-1)[:, :-1]
            equation = "qk,qhw->hwk" if pixel_major else "qk,qhw->khw"
            out.append(torch.einsum(equation, prob, masks.float().sigmoid()))
        return torch.stack(out)

    @staticmethod
    def _upsample(mask_logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``float[Q, h, w]`` stride-4 logits -> ``float[Q, H, W]`` with cell ``(i, j)``
        covering pixels ``[4i, 4i+4)`` (upsample by exactly 4, crop)."""
        up = F.interpolate(
            mask_logits[None].float(),
            scale_factor=OUTPUT_STRIDE,
            mode="bilinear",
            align_corners=False,
        )[0]
        return up[:, : size[0], : size[1]]

    def panoptic(
        self,
        output: MaskOutput,
        text_embeddings: torch.Tensor,
        *,
        is_thing: torch.Tensor,
        dataset: str | None = None,
        sizes: Sequence[tuple[int, int]],
    ) -> list[PanopticPrediction]:
        """Panoptic segments per image at ``sizes`` (stuff merged, things as instances)."""
        is_thing = torch.as_tensor(is_thing, dtype=torch.bool, device=text_embeddings.device)
        merge = self.merge_classes(Task.PANOPTIC, is_thing)
        preds = []
        for b, size in enumerate(sizes):
            masks, logits = self._image_proposals(output, text_embeddings, b, merge)
            preds.append(
                panoptic_segments(
                    self._upsample(masks, size),
                    logits.float().softmax(-1),
                    size=tuple(size),
                    is_thing=is_thing,
                    object_mask_threshold=self.object_mask_threshold,
                    overlap_threshold=self.overlap_threshold,
                )
            )
        return preds

    def instances(
        self,
        output: MaskOutput,
        text_embeddings: torch.Tensor,
        *,
        dataset: str | None = None,
        sizes: Sequence[tuple[int, int]],
    ) -> list[InstancePrediction]:
        """Top-k scored instance masks per image at ``sizes`` (no MERGE)."""
        preds = []
        for b, size in enumerate(sizes):
            masks, logits = self._image_proposals(output, text_embeddings, b, None)
            preds.append(
                instance_masks(
                    self._upsample(masks, size),
                    logits.float().softmax(-1),
                    size=tuple(size),
                    top_k=self.instance_top_k,
                )
            )
        return preds
