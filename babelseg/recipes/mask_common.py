"""What the mask-classification recipes (``lmseg``, ``dataseg``) share.

- :data:`TARGET_SPEC`: the targets collation builds for them in the data workers
  (:mod:`babelseg.data.targets`: semantic maps -> one mask per class present; panoptic / instance
  masks without crowd; boxes-only data -> boxes on the mask-logit grid);
- :class:`MaskRecipe`: the recipe skeleton both recipes subclass: forward with texts, the set
  losses of every decoder layer (each matched on its own, or all with the final layer's
  matches: ``recipe.mask.aux_matching``; per dataset for the logs), and inference for semantic,
  panoptic and instance segmentation; subclasses say how texts become step texts and which
  classes are MERGEd (DaTaSeg) for a task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from babelseg.data.collate import Batch
from babelseg.data.sample import Annotation, Task
from babelseg.data.targets import MaskTargetBatch, TargetSpec, build_mask_targets
from babelseg.losses.mask_criterion import MaskCriterion, at_least_one
from babelseg.losses.term_weights import TermWeights, weights_for
from babelseg.matching.groups import MatchGroup
from babelseg.matching.merge import merge_padded, merge_proposals
from babelseg.models.heads.dataset_modules import DatasetTextClassifier
from babelseg.models.heads.text_classifier import TextClassifier
from babelseg.models.mask_model import OUTPUT_STRIDE, MaskClassificationModel
from babelseg.models.outputs import MaskOutput
from babelseg.models.postprocess import instance_masks, panoptic_segments
from babelseg.models.segments import InstancePrediction, PanopticPrediction
from babelseg.recipes.base import LossResult, Recipe, group_by_dataset
from babelseg.recipes.mask_batch_rows import dataset_rows, target_counts

# ---------------------------------------------------------------------------- targets
# masks over the stride-4 logits' extent at image resolution, boxes on the mask-logit grid
TARGET_SPEC = TargetSpec(pad_multiple=OUTPUT_STRIDE, mask_stride=1, box_stride=OUTPUT_STRIDE)


def batch_targets(batch: Batch, spec: TargetSpec = TARGET_SPEC) -> MaskTargetBatch:
    """The batch's targets: those collation built in the data workers, or, for a batch collated
    without a target spec (``collate_samples(samples)`` in a script), built now on the CPU and
    moved to the batch's device."""
    if batch.targets is not None:
        return batch.targets
    semantic = None if batch.semantic is None else batch.semantic.cpu()
    size = (int(batch.images.shape[-2]), int(batch.images.shape[-1]))
    return build_mask_targets(batch.samples, semantic, size, spec).to(batch.images.device)


# ---------------------------------------------------------------------------- recipe
class MaskRecipe(Recipe):
    """Mask proposals + class embeddings classified against texts: training and inference.

    Subclasses set ``name`` and ``supported_annotations`` and may override
    :meth:`merge_classes` (default: no MERGE) and :meth:`step_texts`.

    Args:
        model: The mask-classification network (its query decoder may use texts).
        classifier: Texts -> class logits (with one shared or per-dataset background).
        criterion: Matching and set losses.
        object_mask_threshold: Panoptic / instance: minimum class probability of a kept query.
        overlap_threshold: Panoptic: minimum share of a query's mask left after overlaps.
        instance_top_k: Instance: masks kept per image.
        dataset_loss_weights: ``{dataset: weight}`` multiplying each image's losses (1 for
            datasets not named).
        thing_flags: ``{dataset: [is_thing per class]}`` of the training label spaces (MERGE of
            stuff classes on panoptic data).
        term_weights: ``{dataset or kind: loss and matching weights}``
            (``recipe.mask.per_dataset``; kinds: ``semantic``, ``panoptic``, ``instance``,
            ``boxes``; the criterion's defaults for the others). Applied per image: each dataset
            of a mixed batch is matched and weighted with its own.
        dataset_object_mask_thresholds / min_segment_area / instance_score_threshold: Per-dataset
            panoptic thresholds, the fewest pixels of a kept segment, instance score threshold.
    """

    name = "mask"
    supported_annotations = frozenset({Annotation.CLEAN, Annotation.NOISY})
    predicts_segments = True
    target_spec = TARGET_SPEC
    forward_takes_texts = True

    def __init__(
        self,
        *,
        model: MaskClassificationModel,
        classifier: TextClassifier | DatasetTextClassifier,
        criterion: MaskCriterion,
        object_mask_threshold: float = 0.5,
        overlap_threshold: float = 0.8,
        instance_top_k: int = 50,
        dataset_loss_weights: Mapping[str, float] | None = None,
        thing_flags: Mapping[str, Sequence[bool]] | None = None,
        term_weights: Mapping[str, TermWeights] | None = None,
        dataset_object_mask_thresholds: Mapping[str, float] | None = None,
        min_segment_area: int = 0,
        instance_score_threshold: float | None = None,
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
        self.term_weights = dict(term_weights or {})
        self.dataset_object_mask_thresholds = dict(dataset_object_mask_thresholds or {})
        self.min_segment_area = int(min_segment_area)
        self.instance_score_threshold = instance_score_threshold

    def dataset_weights(
        self, dataset: str, *, task: Task | str = "", box_only: bool = False
    ) -> TermWeights:
        """The loss and matching weights of ``dataset``'s images (its own entry, else its
        kind's: ``boxes`` for boxes-only data, else its task's)."""
        return weights_for(
            self.term_weights,
            self.criterion.default_weights,
            dataset=dataset,
            task=Task(task).value if task else "",
            box_only=box_only,
        )

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
        """This process's ``num_images``, ``num_masks``, ``num_boxes`` (counted in the workers)."""
        return dict(batch_targets(batch, self.target_spec).counts)

    def _groups(
        self,
        layers: Sequence[MaskOutput],
        idx: list[int],
        text: torch.Tensor,
        merge: tuple[torch.Tensor, int] | None,
        tag: int,
        name: str,
        weight: float,
        rows: torch.Tensor | None,
        first: int,
    ) -> list[MatchGroup]:
        """One :class:`MatchGroup` per decoder layer (the final one first) for the images ``idx``
        of one dataset (``rows``: ``idx`` on the device, None when they are all the batch's
        images; ``first``: the final layer's group's index among the step's groups).

        With ``aux_matching="last"`` the auxiliary layers' groups take the final layer's matches
        (``match_from=first``, DaTaSeg App. E) and, under MERGE, are merged by the final
        layer's arg-max classes, so that their proposals are laid out as the final layer's and
        its indices mean the same proposals. The merging by the final layer's classes is OUR
        choice: App. E does not say how its shared matching meets MERGE."""
        last = self.criterion.aux_matching == "last"
        groups, predicted = [], None
        for i, layer in enumerate(layers):
            embeddings, masks = layer.class_embeddings, layer.mask_logits
            if rows is not None:
                embeddings, masks = embeddings.index_select(0, rows), masks.index_select(0, rows)
            logits = self.classifier(embeddings, text, dataset=name)  # [b, Q, K + 1]
            valid, num_valid = None, None
            if merge is not None:
                if last and i == 0:
                    predicted = logits.detach().argmax(-1)  # [b, Q]: the final layer's classes
                masks, logits, valid, num_valid = merge_padded(
                    masks, logits, *merge, predicted=predicted
                )
            groups.append(
                MatchGroup(
                    class_logits=logits,
                    mask_logits=masks,
                    images=idx,
                    query_valid=valid,
                    num_valid=num_valid,
                    weight=weight,
                    tag=tag,
                    segment=len(groups) + tag * len(layers),
                    match_from=first if last and i else None,
                )
            )
        return groups

    def loss(
        self,
        output: MaskOutput,
        batch: Batch,
        texts: Mapping[str, torch.Tensor],
        *,
        normalisers: Mapping[str, torch.Tensor | float],
    ) -> LossResult:
        """Matched classification CE + point-sampled mask CE or focal and dice (+ box projection
        for boxes-only data) on the final and every auxiliary decoder layer (matched per layer,
        or all with the final layer's matches: ``criterion.aux_matching``), each image in its
        own label space and with its dataset's weights (:meth:`dataset_weights`); the sums are
        divided by the all-reduced :meth:`loss_counts`. Reads nothing
        back from the device except the matching costs (one crossing)."""
        targets = batch_targets(batch, self.target_spec)
        layers = [output, *(output.aux or [])]
        by_dataset = group_by_dataset(batch.datasets)
        rows = dataset_rows(by_dataset, output.mask_logits.device)
        groups: list[MatchGroup] = []
        for tag, (name, idx) in enumerate(by_dataset.items()):
            text = texts[name]
            merge = self.merge_classes(
                targets.tasks[idx[0]],
                self._is_thing(name, len(text)),
                box_only=targets.box_only[idx[0]],
            )
            if merge is not None and bool(merge.any()):  # host tensors: no device read
                merge = (merge.to(output.mask_logits.device), int(merge.sum()))
            else:
                merge = None
            weight = float(self.dataset_loss_weights.get(name, 1.0))
            groups += self._groups(
                layers, idx, text, merge, tag, name, weight, rows[tag], len(groups)
            )
        weights = [
            self.dataset_weights(name, task=targets.tasks[i[0]], box_only=targets.box_only[i[0]])
            for name, i in by_dataset.items()
        ]
        per_tag = self.criterion.step(
            groups, targets, num_tags=len(by_dataset), tag_weights=weights
        )
        per_dataset: dict[str, torch.Tensor] = {}
        total_losses: dict[str, torch.Tensor] = {}
        for (name, idx), losses, w in zip(by_dataset.items(), per_tag, weights):
            per_dataset[name] = self.criterion.total(
                losses, target_counts(targets, idx), weights=w
            ).detach()
            for key, value in losses.items():
                total_losses[key] = total_losses[key] + value if key in total_losses else value
        if len(set(weights)) == 1:  # one set of weights: one weighted sum
            total = self.criterion.total(total_losses, dict(normalisers), weights=weights[0])
        else:  # each dataset's sums with its own weights, over the same normalisers
            total = sum(
                self.criterion.total(losses, dict(normalisers), weights=w)
                for losses, w in zip(per_tag, weights)
            )
        divisor = {"loss_class": "num_images", "loss_projection": "num_boxes"}
        logs = {  # per layer, each divided by its normaliser, unweighted (read on log steps)
            k: v.detach() / at_least_one(normalisers[divisor.get(k, "num_masks")]) / len(layers)
            for k, v in total_losses.items()
        }
        logs["temperature"] = 1.0 / self.classifier.temperature().detach()
        return LossResult(total=total, per_dataset=per_dataset, logs=logs)

    def _is_thing(self, dataset: str, num_classes: int) -> torch.Tensor:
        """``bool[K]`` thing flags of a training dataset's label space (all False if unknown), on
        the CPU."""
        flags = self.thing_flags.get(dataset)
        if flags is None or len(flags) != num_classes:
            return torch.zeros(num_classes, dtype=torch.bool)
        return torch.as_tensor(flags, dtype=torch.bool)

    # ------------------------------------------------------------------ inference
    def _image_proposals(
        self,
        output: MaskOutput,
        text: torch.Tensor,
        b: int,
        merge: torch.Tensor | None,
        dataset: str | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.classifier(output.class_embeddings[b], text, dataset=dataset)
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
            dataset: The training dataset of the texts, or None (a per-dataset background uses
                it).
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
            masks, logits = self._image_proposals(output, text_embeddings, b, merge, dataset)
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
        threshold = self.dataset_object_mask_thresholds.get(dataset, self.object_mask_threshold)
        preds = []
        for b, size in enumerate(sizes):
            masks, logits = self._image_proposals(output, text_embeddings, b, merge, dataset)
            preds.append(
                panoptic_segments(
                    self._upsample(masks, size),
                    logits.float().softmax(-1),
                    size=tuple(size),
                    is_thing=is_thing,
                    object_mask_threshold=threshold,
                    overlap_threshold=self.overlap_threshold,
                    min_area=self.min_segment_area,
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
            masks, logits = self._image_proposals(output, text_embeddings, b, None, dataset)
            preds.append(
                instance_masks(
                    self._upsample(masks, size),
                    logits.float().softmax(-1),
                    size=tuple(size),
                    top_k=self.instance_top_k,
                    min_area=self.min_segment_area,
                    score_threshold=self.instance_score_threshold,
                )
            )
        return preds
