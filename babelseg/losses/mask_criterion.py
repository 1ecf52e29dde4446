"""Set-prediction losses of the mask-classification recipes (Mask2Former; DaTaSeg eq. 4).

For each decoder layer (the final one and every auxiliary one), proposals are matched to the
targets by the :class:`~babelseg.matching.hungarian.HungarianMatcher` and then

- ``loss_class``: cross-entropy over the image's ``K + 1`` classes, matched proposals towards
  their target's class, the others towards "no object" (last), the latter weighted by
  ``no_object_weight``; per image the weighted mean over its proposals;
- ``loss_mask`` and ``loss_dice``: sigmoid CE (or focal) and dice of each matched mask target on
  ``num_points`` points sampled where the prediction is uncertain (Mask2Former), each mask's
  loss a mean over points;
- ``loss_projection``: the box projection loss of each matched box-only target (full mask).

The results are *sums* (class: over images; mask and dice: over mask targets; projection: over
box targets) and over layers; the recipe divides by the all-reduced counts
(:func:`target_counts`) and weights them, e.g. with :meth:`MaskCriterion.total`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from babelseg.losses.box_projection import box_projection_loss
from babelseg.losses.mask import dice_loss, sigmoid_ce_loss, sigmoid_focal_loss
from babelseg.matching.hungarian import HungarianMatcher
from babelseg.matching.point_sampling import point_sample, uncertain_points
from babelseg.matching.targets import MaskTargets

LOSS_KEYS = ("loss_class", "loss_mask", "loss_dice", "loss_projection")
MASK_LOSSES = ("ce", "focal")


@dataclass
class LayerPrediction:
    """What one decoder layer predicts for a batch, per image.

    Attributes:
        class_logits: Per image ``float[Q_b, K_b + 1]`` (last = no object).
        mask_logits: Per image ``float[Q_b, H, W]`` (a ``float[B, Q, H, W]`` tensor works).
    """

    class_logits: Sequence[torch.Tensor]
    mask_logits: Sequence[torch.Tensor]


def target_counts(targets: Sequence[MaskTargets]) -> dict[str, float]:
    """Normalisers of one process's batch: ``num_images``, ``num_masks`` (mask targets) and
    ``num_boxes`` (box-only targets); all-reduce them before dividing."""
    masks = sum(len(t) for t in targets if not t.box_only)
    boxes = sum(len(t) for t in targets if t.box_only)
    return {"num_images": float(len(targets)), "num_masks": float(masks), "num_boxes": float(boxes)}


class MaskCriterion:
    """Matching plus losses over every decoder layer.

    Args:
        matcher: Assigns proposals to targets (each layer is matched separately).
        no_object_weight: Cross-entropy weight of the "no object" class.
        class_weight / mask_weight / dice_weight / projection_weight: Weights used by
            :meth:`total`.
        num_points: Points per mask for the mask and dice losses.
        oversample_ratio: Candidates per uncertain point (Mask2Former: 3).
        importance_sample_ratio: Share of the points chosen by uncertainty (Mask2Former: 0.75).
        mask_loss: ``"ce"`` (Mask2Former) or ``"focal"`` (LMSeg, DaTaSeg).
        focal_alpha / focal_gamma: Focal loss parameters.
    """

    def __init__(
        self,
        *,
        matcher: HungarianMatcher,
        no_object_weight: float = 0.1,
        class_weight: float = 2.0,
        mask_weight: float = 5.0,
        dice_weight: float = 5.0,
        projection_weight: float = 5.0,
        num_points: int = 1024,
        oversample_ratio: float = 3.0,
        importance_sample_ratio: float = 0.75,
        mask_loss: str = "ce",
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
    ) -> None:
        if mask_loss not in MASK_LOSSES:
            raise ValueError(f"Unknown mask_loss {mask_loss!r}; valid: {', '.join(MASK_LOSSES)}")
        if not 0 <= no_object_weight:
            raise ValueError(f"no_object_weight must be >= 0, got {no_object_weight}")
        self.matcher = matcher
        self.no_object_weight = no_object_weight
        self.weights = {
            "loss_class": class_weight,
            "loss_mask": mask_weight,
            "loss_dice": dice_weight,
            "loss_projection": projection_weight,
        }
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.mask_loss = mask_loss
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma

    def __call__(
        self,
        layers: Sequence[LayerPrediction],
        targets: Sequence[MaskTargets],
        *,
        image_weights: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Match and compute the losses of every layer, summed over layers.

        Args:
            layers: The final layer and the auxiliary ones (any order; all weigh the same).
            targets: Per image targets.
            image_weights: Optional ``float[B]`` multiplier of each image's losses (DaTaSeg's
                per-dataset loss weights).
            generator: Random generator for the sampled points.
        Returns:
            ``{loss_class, loss_mask, loss_dice, loss_projection}`` 0-d sums (see the module
            docstring) and ``{num_images, num_masks, num_boxes}`` of this batch (0-d tensors).
        """
        total: dict[str, torch.Tensor] = {}
        for layer in layers:
            indices = self.matcher(layer.class_logits, layer.mask_logits, targets, generator)
            losses = self.layer_losses(
                layer, targets, indices, image_weights=image_weights, generator=generator
            )
            for key, value in losses.items():
                total[key] = total[key] + value if key in total else value
        device = total["loss_class"].device if total else torch.device("cpu")
        for key, value in target_counts(targets).items():
            total[key] = torch.tensor(value, device=device)
        return total

    def layer_losses(
        self,
        layer: LayerPrediction,
        targets: Sequence[MaskTargets],
        indices: Sequence[tuple[torch.Tensor, torch.Tensor]],
        *,
        image_weights: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """The losses of one layer for given matches.

        Args:
            layer: The layer's predictions.
            targets: Per image targets.
            indices: Per image ``(query_idx, target_idx)`` from the matcher.
            image_weights: Optional ``float[B]`` per-image multipliers.
            generator: Random generator for the sampled points.
        Returns:
            ``{loss_class, loss_mask, loss_dice, loss_projection}`` 0-d sums.
        """
        device = layer.mask_logits[0].device
        num_images = len(targets)
        if image_weights is None:
            image_weights = torch.ones(num_images, device=device)
        image_weights = image_weights.to(device=device, dtype=torch.float32)
        zero = torch.zeros((), device=device)
        loss_class = zero
        rows, is_box, row_weight, target_masks, boxes = [], [], [], [], []
        for b in range(num_images):
            tgt = targets[b]
            query_idx, target_idx = (i.to(device) for i in indices[b])
            class_loss = self._class_loss(layer.class_logits[b], tgt, query_idx, target_idx)
            loss_class = loss_class + image_weights[b] * class_loss
            if query_idx.numel() == 0:
                continue
            rows.append((b, query_idx))
            is_box.append(torch.full((query_idx.numel(),), tgt.box_only, device=device))
            row_weight.append(image_weights[b].expand(query_idx.numel()))
            if tgt.box_only:
                boxes.append(tgt.boxes.to(device)[target_idx])
            else:
                target_masks.append(tgt.masks[target_idx.to(tgt.masks.device)])
        loss_mask, loss_dice, proj = zero, zero, zero
        if rows:
            # One gather for every matched proposal of the batch (one backward scatter, not one
            # per image).
            matched = _gather_rows(layer.mask_logits, rows)
            box_rows, weights = torch.cat(is_box), torch.cat(row_weight)
            if target_masks:
                loss_mask, loss_dice = self._point_losses(
                    matched[~box_rows], target_masks, weights[~box_rows], generator
                )
            if boxes:
                per_box = box_projection_loss(matched[box_rows], torch.cat(boxes))
                proj = (weights[box_rows] * per_box).sum()
        return {
            "loss_class": loss_class,
            "loss_mask": loss_mask,
            "loss_dice": loss_dice,
            "loss_projection": proj,
        }

    def total(self, losses: dict[str, torch.Tensor], normalisers: dict[str, float]) -> torch.Tensor:
        """Weighted sum of the losses, each divided by its all-reduced normaliser.

        Args:
            losses: The output of :meth:`__call__`.
            normalisers: All-reduced ``num_images``, ``num_masks``, ``num_boxes`` (divisors below
                1 are raised to 1).
        Returns:
            0-d ``class_weight * loss_class / num_images + mask_weight * loss_mask / num_masks
            + dice_weight * loss_dice / num_masks + projection_weight * loss_projection /
            num_boxes``.
        """
        divisors = {
            "loss_class": normalisers["num_images"],
            "loss_mask": normalisers["num_masks"],
            "loss_dice": normalisers["num_masks"],
            "loss_projection": normalisers["num_boxes"],
        }
        return sum(
            self.weights[key] * losses[key] / max(float(divisors[key]), 1.0) for key in LOSS_KEYS
        )

    def _class_loss(
        self,
        class_logits: torch.Tensor,
        targets: MaskTargets,
        query_idx: torch.Tensor,
        target_idx: torch.Tensor,
    ) -> torch.Tensor:
        """Weighted-mean cross-entropy of one image's ``float[Q, K + 1]`` class logits."""
        num_queries, num_outputs = class_logits.shape
        target = torch.full(
            (num_queries,), num_outputs - 1, dtype=torch.int64, device=class_logits.device
        )
        target[query_idx] = targets.classes.to(class_logits.device)[target_idx]
        weight = torch.ones(num_outputs, device=class_logits.device)
        weight[-1] = self.no_object_weight
        return F.cross_entropy(class_logits.float(), target, weight=weight)

    def _point_losses(
        self,
        pred_masks: torch.Tensor,
        target_masks: list[torch.Tensor],
        weights: torch.Tensor,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask and dice losses of matched ``float[M, H, W]`` predictions against the per-image
        ``[M_b, H', W']`` targets (in order), on uncertainty-sampled points; ``weights``
        ``float[M]`` per mask."""
        pred = pred_masks.unsqueeze(1).float()  # [M, 1, H, W]
        coords = uncertain_points(
            pred, self.num_points, self.oversample_ratio, self.importance_sample_ratio, generator
        )
        labels, start = [], 0
        for tgt in target_masks:
            n = tgt.shape[0]
            tgt = tgt.to(device=pred.device, dtype=torch.float32).unsqueeze(1)
            labels.append(point_sample(tgt, coords[start : start + n])[:, 0])
            start += n
        point_labels = torch.cat(labels)  # [M, P]
        point_logits = point_sample(pred, coords)[:, 0]  # [M, P]
        if self.mask_loss == "focal":
            per_mask = sigmoid_focal_loss(
                point_logits,
                point_labels,
                alpha=self.focal_alpha,
                gamma=self.focal_gamma,
                reduction="none",
            )
        else:
            per_mask = sigmoid_ce_loss(point_logits, point_labels, reduction="none")
        per_dice = dice_loss(point_logits, point_labels, reduction="none")
        return (weights * per_mask).sum(), (weights * per_dice).sum()


def _gather_rows(
    mask_logits: Sequence[torch.Tensor], rows: list[tuple[int, torch.Tensor]]
) -> torch.Tensor:
    """The ``[Q_b, H, W]`` rows ``query_idx`` of every image ``b``, concatenated: one index
    operation on a ``float[B, Q, H, W]`` tensor, one per image for per-image lists."""
    if isinstance(mask_logits, torch.Tensor):
        num_queries = mask_logits.shape[1]
        flat = torch.cat([b * num_queries + q for b, q in rows])
        return mask_logits.flatten(0, 1)[flat]
    return torch.cat([mask_logits[b][q] for b, q in rows])
