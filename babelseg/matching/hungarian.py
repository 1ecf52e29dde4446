"""Hungarian matching of mask proposals to ground-truth targets (DETR / Mask2Former; DaTaSeg
eq. 5 for box targets), one image at a time with ``scipy.optimize.linear_sum_assignment``.

Each image may have its own label space (mixed-dataset batches) and, after DaTaSeg's MERGE, its
own number of proposals, so predictions come as per-image sequences.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from scipy.optimize import linear_sum_assignment

from babelseg.matching.costs import (
    pairwise_box_projection_cost,
    pairwise_dice,
    pairwise_sigmoid_ce,
    pairwise_sigmoid_focal,
)
from babelseg.matching.point_sampling import point_sample
from babelseg.matching.targets import MaskTargets

MASK_COSTS = ("ce", "focal")


class HungarianMatcher:
    """One-to-one assignment of proposals to targets minimising

    ``class_weight * (-p[target class]) + mask_weight * mask cost + dice_weight * dice cost`` for
    mask targets, where the mask and dice costs are computed on the same ``num_points`` uniformly
    sampled points for every proposal and target of the image (so the cost does not grow with the
    image size), and ``class_weight * (-p) + projection_weight * projection cost`` for box-only
    targets (:func:`~babelseg.matching.costs.pairwise_box_projection_cost` on the full mask
    logits). ``p`` is the softmax over the image's ``K + 1`` classes (last = no object).

    Args:
        class_weight: Weight of the class cost.
        mask_weight: Weight of the sigmoid CE (or focal) mask cost.
        dice_weight: Weight of the dice cost.
        projection_weight: Weight of the box projection cost (box-only targets).
        num_points: Points sampled per image for the mask and dice costs.
        mask_cost: ``"ce"`` (Mask2Former) or ``"focal"`` (MaskFormer, LMSeg eq. 5).
        focal_alpha: Focal cost alpha.
        focal_gamma: Focal cost gamma.
    """

    def __init__(
        self,
        *,
        class_weight: float = 2.0,
        mask_weight: float = 5.0,
        dice_weight: float = 5.0,
        projection_weight: float = 5.0,
        num_points: int = 1024,
        mask_cost: str = "ce",
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
    ) -> None:
        if num_points < 1:
            raise ValueError(f"num_points must be >= 1, got {num_points}")
        if mask_cost not in MASK_COSTS:
            raise ValueError(f"Unknown mask_cost {mask_cost!r}; valid: {', '.join(MASK_COSTS)}")
        self.class_weight = class_weight
        self.mask_weight = mask_weight
        self.dice_weight = dice_weight
        self.projection_weight = projection_weight
        self.num_points = num_points
        self.mask_cost = mask_cost
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma

    @torch.no_grad()
    def cost_matrix(
        self,
        class_logits: torch.Tensor,
        mask_logits: torch.Tensor,
        targets: MaskTargets,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The matching cost of one image.

        Args:
            class_logits: ``float[Q, K + 1]`` (last = no object).
            mask_logits: ``float[Q, H, W]``.
            targets: The image's T targets.
            generator: Random generator for the points, on ``mask_logits.device``.
        Returns:
            ``float32[Q, T]``.
        """
        num_classes = class_logits.shape[-1] - 1
        classes = targets.classes.to(class_logits.device)
        if len(classes) and (int(classes.min()) < 0 or int(classes.max()) >= num_classes):
            raise ValueError(
                f"Target classes {classes.tolist()} out of range for {num_classes} classes (+1 no "
                "object); drop ignored or crowd targets before matching"
            )
        prob = class_logits.float().softmax(-1)
        cost = -self.class_weight * prob[:, classes]
        mask_logits = mask_logits.float()
        if targets.box_only:
            boxes = targets.boxes.to(mask_logits.device)
            cost = cost + self.projection_weight * pairwise_box_projection_cost(mask_logits, boxes)
            return cost
        coords = torch.rand(1, self.num_points, 2, device=mask_logits.device, generator=generator)
        pred = point_sample(mask_logits.unsqueeze(0), coords)[0]  # [Q, P]
        target_masks = targets.masks.to(device=mask_logits.device, dtype=torch.float32)
        tgt = point_sample(target_masks.unsqueeze(0), coords)[0]  # [T, P]
        if self.mask_cost == "focal":
            mask = pairwise_sigmoid_focal(pred, tgt, alpha=self.focal_alpha, gamma=self.focal_gamma)
        else:
            mask = pairwise_sigmoid_ce(pred, tgt)
        return cost + self.mask_weight * mask + self.dice_weight * pairwise_dice(pred, tgt)

    @torch.no_grad()
    def __call__(
        self,
        class_logits: Sequence[torch.Tensor],
        mask_logits: Sequence[torch.Tensor],
        targets: Sequence[MaskTargets],
        generator: torch.Generator | None = None,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Match every image.

        Args:
            class_logits: Per image ``float[Q_b, K_b + 1]`` (last = no object).
            mask_logits: Per image ``float[Q_b, H, W]`` (a ``float[B, Q, H, W]`` tensor works).
            targets: Per image targets.
            generator: Random generator for the sampled points.
        Returns:
            Per image ``(query_idx int64[T'], target_idx int64[T'])`` on the CPU, ``T' = min(Q_b,
            T_b)``, sorted by query.
        Raises:
            ValueError: Different numbers of images, out-of-range classes or a non-finite cost.
        """
        if not len(class_logits) == len(mask_logits) == len(targets):
            raise ValueError(
                f"{len(class_logits)} class logits, {len(mask_logits)} mask logits and "
                f"{len(targets)} targets: pass one of each per image"
            )
        out = []
        for b, (cls, masks, tgt) in enumerate(zip(class_logits, mask_logits, targets)):
            if len(tgt) == 0:
                empty = torch.zeros(0, dtype=torch.int64)
                out.append((empty, empty.clone()))
                continue
            cost = self.cost_matrix(cls, masks, tgt, generator).cpu()
            if not torch.isfinite(cost).all():
                raise ValueError(
                    f"Non-finite matching cost in image {b} (NaN or inf in the predictions); "
                    "lower the learning rate or enable gradient clipping"
                )
            rows, cols = linear_sum_assignment(cost.numpy())
            out.append(
                (torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64))
            )
        return out
