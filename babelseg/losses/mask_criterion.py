"""Set-prediction losses of the mask-classification recipes (Mask2Former; DaTaSeg eq. 4).

For each decoder layer (the final one and every auxiliary one), proposals are assigned to the
targets by the :class:`~babelseg.matching.hungarian.HungarianMatcher`, per layer
(``aux_matching="per_layer"``, Mask2Former's deep supervision) or once on the final layer's
predictions with that assignment reused for every auxiliary layer (``"last"``, DaTaSeg App. E),
and then

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

:meth:`MaskCriterion.step` does a whole training step on the device: the cost matrices of every
(label space, layer) group in batched calls, one crossing to the host for the assignments
(:func:`~babelseg.matching.hungarian.assign`), one copy of the matches back, and the losses of
all groups' matched masks in one point-sampling pass. The uniform random numbers of the step are
drawn in one call, laid out in the order in which the per-layer implementation used to draw them,
so a CPU run gives the same points as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from babelseg.data.targets import MaskTargetBatch
from babelseg.losses.box_projection import box_projection_loss
from babelseg.losses.mask import dice_loss, sigmoid_ce_loss, sigmoid_focal_loss
from babelseg.losses.term_weights import TermWeights
from babelseg.matching.groups import (
    DrawPlan,
    MatchGroup,
    gather_matched,
    match_table,
    runs_of,
    shared_matches,
)
from babelseg.matching.hungarian import HungarianMatcher, assign
from babelseg.matching.point_sampling import point_sample, uncertain_points
from babelseg.matching.targets import MaskTargets, stack_targets

LOSS_KEYS = ("loss_class", "loss_mask", "loss_dice", "loss_projection")
MASK_LOSSES = ("ce", "focal")
AUX_MATCHINGS = ("per_layer", "last")
"""How the auxiliary layers are matched: each on its own predictions (Mask2Former) or with the
final layer's assignment (DaTaSeg App. E)."""


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

    The weights given here (and the matcher's cost weights) are :attr:`default_weights`;
    :meth:`step` and :meth:`total` take other :class:`~babelseg.losses.term_weights.TermWeights`
    per tag (a dataset's, DaTaSeg Table 10).

    Args:
        matcher: Assigns proposals to targets.
        aux_matching: ``"per_layer"``: every layer matched on its own predictions (Mask2Former);
            ``"last"``: the final layer matched once, its assignment reused for the auxiliary
            layers (DaTaSeg App. E). :meth:`__call__` reads it (its ``layers[0]`` is the final
            layer); :meth:`step` follows each group's ``match_from``, which the recipe sets
            from it.
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
        aux_matching: str = "per_layer",
    ) -> None:
        if mask_loss not in MASK_LOSSES:
            raise ValueError(f"Unknown mask_loss {mask_loss!r}; valid: {', '.join(MASK_LOSSES)}")
        if aux_matching not in AUX_MATCHINGS:
            raise ValueError(
                f"Unknown aux_matching {aux_matching!r}; valid: {', '.join(AUX_MATCHINGS)}"
            )
        self.aux_matching = aux_matching
        if not 0 <= no_object_weight:
            raise ValueError(f"no_object_weight must be >= 0, got {no_object_weight}")
        self.matcher = matcher
        cost = matcher.weights
        self.default_weights = TermWeights(
            class_weight=class_weight,
            mask_weight=mask_weight,
            dice_weight=dice_weight,
            projection_weight=projection_weight,
            match_class_weight=cost.class_weight,
            match_mask_weight=cost.mask_weight,
            match_dice_weight=cost.dice_weight,
            match_projection_weight=cost.projection_weight,
            no_object_weight=no_object_weight,
        )
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
        """Match and compute the losses of every layer, summed over layers (per-image inputs;
        the training step calls :meth:`step` on padded targets).

        Args:
            layers: The final layer first, then the auxiliary ones (all weigh the same; with
                ``aux_matching="last"`` every layer takes ``layers[0]``'s matches).
            targets: Per image targets.
            image_weights: Optional ``float[B]`` multiplier of each image's losses.
            generator: Random generator for the sampled points.
        Returns:
            ``{loss_class, loss_mask, loss_dice, loss_projection}`` 0-d sums (see the module
            docstring) and ``{num_images, num_masks, num_boxes}`` of this batch (0-d tensors).
        """
        batch = stack_targets(targets)
        weights = [1.0] * len(targets) if image_weights is None else image_weights.tolist()
        last = self.aux_matching == "last"
        groups = [
            MatchGroup(
                class_logits=layer.class_logits[b][None],
                mask_logits=layer.mask_logits[b][None],
                images=[b],
                weight=float(weights[b]),
                segment=i,
                match_from=b if last and i else None,  # group b: the final layer's image b
            )
            for i, layer in enumerate(layers)
            for b in range(len(targets))
        ]
        total = self.step(groups, batch, num_tags=1, generator=generator)[0]
        device = total["loss_class"].device
        for key, value in target_counts(targets).items():
            total[key] = torch.tensor(value, device=device)
        return total

    def step(
        self,
        groups: Sequence[MatchGroup],
        targets: MaskTargetBatch,
        *,
        num_tags: int,
        generator: torch.Generator | None = None,
        tag_weights: Sequence[TermWeights] | None = None,
    ) -> list[dict[str, torch.Tensor]]:
        """The losses of a training step: match every group (those with ``match_from`` take
        the named group's matches instead), then compute all losses at once.

        Args:
            groups: Every (label space, layer) group of the step (same H, W for all; groups of
                one segment next to each other).
            targets: The batch's padded targets, on the predictions' device.
            num_tags: Number of distinct ``tag`` values (0..num_tags-1).
            generator: Random generator for the sampled points.
            tag_weights: Per tag, the matching-cost and no-object weights of its groups (the
                loss weights are applied by :meth:`total`); None: :attr:`default_weights`.
        Returns:
            Per tag ``{loss_class, loss_mask, loss_dice, loss_projection}`` 0-d sums over its
            groups (class: over images; mask and dice: over mask targets; projection: over box
            targets).
        """
        if tag_weights is None:
            tag_weights = [self.default_weights] * num_tags
        if len(tag_weights) != num_tags:
            raise ValueError(f"{len(tag_weights)} tag weights for {num_tags} tags")
        device = groups[0].mask_logits.device
        if not targets.masks.is_floating_point():  # once per step, not once per group
            targets = replace(targets, masks=targets.masks.float())
        plan = DrawPlan(
            num_points=self.num_points,
            oversample_ratio=self.oversample_ratio,
            importance_sample_ratio=self.importance_sample_ratio,
            groups=groups,
            targets=targets,
        )
        uniform = torch.rand(plan.total, device=device, generator=generator)
        image_rows = torch.as_tensor([b for g in groups for b in g.images], dtype=torch.int64)
        if device.type == "cuda":
            image_rows = image_rows.pin_memory()
        image_rows = image_rows.to(device, non_blocking=True).split([len(g.images) for g in groups])
        own = [i for i, g in enumerate(groups) if g.match_from is None]
        costs = [
            self.matcher.batch_costs(
                groups[i].class_logits,
                groups[i].mask_logits,
                targets,
                groups[i].images,
                plan.match_coords(uniform, i),
                image_rows=image_rows[i],
                weights=tag_weights[groups[i].tag].cost_weights(),
            )
            for i in own
        ]
        counts = [[targets.num_targets[b] for b in groups[i].images] for i in own]
        assigned = assign(costs, [groups[i].query_valid for i in own], counts)
        matches = shared_matches(groups, dict(zip(own, assigned)))
        table = match_table(groups, matches, targets)  # host int64[M, 5], mask rows first
        mix = np.zeros((num_tags, len(groups)))  # tag <- group weights
        mix[[g.tag for g in groups], np.arange(len(groups))] = [g.weight for g in groups]
        packed = torch.from_numpy(np.concatenate([table.ravel(), mix.ravel()]))
        if device.type == "cuda":
            packed = packed.pin_memory()
        packed = packed.to(device, non_blocking=True)  # the one copy back
        rows = packed[: table.size].view(-1, 5).long()
        mix_t = packed[table.size :].view(num_tags, len(groups)).float()
        num_mask = int((~np.asarray([targets.box_only[b] for b in table[:, 3]], bool)).sum())
        zero = torch.zeros(len(groups), device=device)
        sums = {key: zero for key in LOSS_KEYS}
        no_object = [tag_weights[g.tag].no_object_weight for g in groups]
        sums["loss_class"] = self._class_losses(groups, rows, targets, table, no_object)
        matched = gather_matched(groups, table, rows)
        if num_mask:
            per_mask, per_dice = self._point_losses(
                matched[:num_mask],
                targets,
                rows[:num_mask],
                plan.loss_uniform(uniform, table[:num_mask]),
            )
            sums["loss_mask"] = zero.index_add(0, rows[:num_mask, 0], per_mask)
            sums["loss_dice"] = zero.index_add(0, rows[:num_mask, 0], per_dice)
        if num_mask < len(table):
            box = rows[num_mask:]
            per_box = box_projection_loss(matched[num_mask:], targets.boxes[box[:, 3], box[:, 4]])
            sums["loss_projection"] = zero.index_add(0, box[:, 0], per_box)
        by_tag = {key: mix_t @ value for key, value in sums.items()}
        return [{key: by_tag[key][t] for key in LOSS_KEYS} for t in range(num_tags)]

    def _class_losses(
        self,
        groups: Sequence[MatchGroup],
        rows: torch.Tensor,
        targets: MaskTargetBatch,
        table: np.ndarray,
        no_object: Sequence[float],
    ) -> torch.Tensor:
        """``float[G]``: per group, the sum over its images of the weighted-mean CE over the
        image's valid proposals (matched ones towards their class, the others towards no
        object, weighted ``no_object[group]``)."""
        device = rows.device
        out = []
        for i, g in enumerate(groups):
            b, q, k1 = g.class_logits.shape
            target = torch.full((b, q), k1 - 1, dtype=torch.int64, device=device)
            for lo, hi in runs_of(table[:, 0], i):
                part = rows[lo:hi]
                target[part[:, 1], part[:, 2]] = targets.classes[part[:, 3], part[:, 4]]
            ce = F.cross_entropy(
                g.class_logits.float().flatten(0, 1), target.flatten(), reduction="none"
            ).view(b, q)
            w = torch.where(target == k1 - 1, float(no_object[i]), 1.0)
            if g.query_valid is not None:
                w = w * g.query_valid.to(w.dtype)
            out.append(((w * ce).sum(1) / w.sum(1)).sum())
        return torch.stack(out)

    def total(
        self,
        losses: dict[str, torch.Tensor],
        normalisers: dict[str, float | torch.Tensor],
        *,
        weights: TermWeights | None = None,
    ) -> torch.Tensor:
        """Weighted sum of the losses, each divided by its all-reduced normaliser.

        Args:
            losses: The output of :meth:`__call__`.
            normalisers: All-reduced ``num_images``, ``num_masks``, ``num_boxes`` (divisors below
                1 are raised to 1; floats or 0-d tensors, which are not read back to the host).
            weights: The loss weights (a dataset's); None: :attr:`default_weights`.
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
        factors = (weights or self.default_weights).loss_weights()
        return sum(factors[key] * losses[key] / at_least_one(divisors[key]) for key in LOSS_KEYS)

    def _point_losses(
        self,
        pred_masks: torch.Tensor,
        targets: MaskTargetBatch,
        rows: torch.Tensor,
        uniform: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-mask ``float[M]`` mask and dice losses of matched ``float[M, H, W]`` predictions
        against their targets (``rows[:, 3:5]``: image and target index) on uncertainty-sampled
        points drawn from the pre-drawn ``uniform`` numbers."""
        pred = pred_masks.unsqueeze(1).float()  # [M, 1, H, W]
        coords = uncertain_points(
            pred,
            self.num_points,
            self.oversample_ratio,
            self.importance_sample_ratio,
            uniform=uniform,
        )
        target = targets.masks[rows[:, 3], rows[:, 4]].to(torch.float32).unsqueeze(1)
        point_labels = point_sample(target, coords)[:, 0]  # [M, P]
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
        return per_mask, dice_loss(point_logits, point_labels, reduction="none")


def at_least_one(value: float | torch.Tensor) -> float | torch.Tensor:
    """``max(value, 1)`` without reading a tensor back to the host."""
    if isinstance(value, torch.Tensor):
        return value.clamp(min=1.0)
    return max(float(value), 1.0)
