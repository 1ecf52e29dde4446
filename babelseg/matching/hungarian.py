"""Hungarian matching of mask proposals to ground-truth targets (DETR / Mask2Former; DaTaSeg
eq. 5 for box targets).

The cost matrices of many images (and decoder layers) are built on the device in batched calls
(:meth:`HungarianMatcher.batch_costs`, one call per group of images that share a label space);
:func:`assign` then crosses to the host once for all of them and runs
``scipy.optimize.linear_sum_assignment`` per image. Each image may have its own label space
(mixed-dataset batches) and, after DaTaSeg's MERGE, its own set of valid proposals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from babelseg.data.targets import MaskTargetBatch
from babelseg.matching.costs import (
    CostWeights,
    pairwise_box_projection_cost,
    pairwise_dice,
    pairwise_sigmoid_ce,
    pairwise_sigmoid_focal,
)
from babelseg.matching.point_sampling import point_sample
from babelseg.matching.targets import MaskTargets, stack_targets

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
        self.weights = CostWeights(
            class_weight=class_weight,
            mask_weight=mask_weight,
            dice_weight=dice_weight,
            projection_weight=projection_weight,
        )
        self.num_points = num_points
        self.mask_cost = mask_cost
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma

    def check_classes(self, targets: MaskTargetBatch, images: Sequence[int], num_classes: int):
        """Raise ValueError when a target class of ``images`` is outside ``0..num_classes-1``
        (read from the host-side ``max_class``: no device read)."""
        bad = [b for b in images if targets.max_class[b] >= num_classes]
        if bad:
            raise ValueError(
                f"Target classes up to {max(targets.max_class[b] for b in bad)} out of range for "
                f"{num_classes} classes (+1 no object) in image(s) {bad}; drop ignored or crowd "
                "targets before matching"
            )

    @torch.no_grad()
    def batch_costs(
        self,
        class_logits: torch.Tensor,
        mask_logits: torch.Tensor,
        targets: MaskTargetBatch,
        images: Sequence[int],
        coords: torch.Tensor | None,
        image_rows: torch.Tensor | None = None,
        weights: CostWeights | None = None,
    ) -> torch.Tensor:
        """The matching costs of b images that share a label space, in batched calls.

        Args:
            class_logits: ``float[b, Q, K + 1]`` (last = no object).
            mask_logits: ``float[b, Q, H, W]``.
            targets: The batch's padded targets (T per image at most).
            images: The b rows of ``targets`` these images are (host ints).
            coords: ``float[b_m, P, 2]`` points of the b_m images among them that have mask
                targets (``T_b > 0``, not box-only), in order; None when there are none.
            image_rows: ``images`` as an ``int64[b]`` tensor on the device (saves a copy).
            weights: The cost weights of these images (their dataset's, DaTaSeg Table 10);
                None: the matcher's own.
        Returns:
            ``float32[b, Q, T]`` (columns past an image's own targets are meaningless).
        """
        self.check_classes(targets, images, class_logits.shape[-1] - 1)
        weights = self.weights if weights is None else weights
        device = class_logits.device
        if image_rows is None:
            image_rows = torch.as_tensor(list(images), dtype=torch.int64).to(device)
        b, q = class_logits.shape[:2]
        prob = class_logits.float().softmax(-1)
        classes = targets.classes.index_select(0, image_rows)  # [b, T]
        cost = -weights.class_weight * prob.gather(2, classes[:, None, :].expand(b, q, -1))
        mask_logits = mask_logits.float()
        is_box = [targets.box_only[i] for i in images]
        parts: list[tuple[list[int], torch.Tensor]] = []
        for box in (False, True):
            sel = [j for j, flag in enumerate(is_box) if flag == box]
            if not sel:
                continue
            logits = _select(mask_logits, sel)
            rows = image_rows if len(sel) == b else image_rows[sel]
            if box:
                boxes = targets.boxes.index_select(0, rows)
                part = weights.projection_weight * pairwise_box_projection_cost(logits, boxes)
            else:
                with_targets = [targets.num_targets[images[j]] > 0 for j in sel]
                whole = [images[j] for j in sel] == list(range(targets.masks.shape[0]))
                masks = targets.masks if whole else targets.masks.index_select(0, rows)
                part = self._mask_costs(logits, masks, coords, with_targets, weights)
            parts.append((sel, part))
        if len(parts) == 1:
            return cost + parts[0][1]
        extra = torch.zeros_like(cost)
        for sel, part in parts:
            extra[sel] = part
        return cost + extra

    def _mask_costs(
        self,
        mask_logits: torch.Tensor,
        masks: torch.Tensor,
        coords: torch.Tensor | None,
        with_targets: list[bool],
        weights: CostWeights,
    ) -> torch.Tensor:
        """``float[b_m, Q, T]`` weighted mask + dice costs of ``float[b_m, Q, H, W]`` logits
        against their ``[b_m, T, h, w]`` targets; images without targets get points at 0."""
        count = sum(with_targets)
        if count and (coords is None or coords.shape[0] != count):
            raise ValueError(f"batch_costs needs points for the {count} images with mask targets")
        if count < len(with_targets):  # no targets, no points drawn: any points will do
            zeros = mask_logits.new_zeros((1, self.num_points, 2))
            pieces, used = [], 0
            for has in with_targets:
                pieces.append(coords[used : used + 1] if has else zeros)
                used += int(has)
            coords = torch.cat(pieces)
        pred = point_sample(mask_logits, coords)  # [b_m, Q, P]
        tgt = point_sample(masks.to(device=mask_logits.device, dtype=torch.float32), coords)
        if self.mask_cost == "focal":
            mask = pairwise_sigmoid_focal(pred, tgt, alpha=self.focal_alpha, gamma=self.focal_gamma)
        else:
            mask = pairwise_sigmoid_ce(pred, tgt)
        return weights.mask_weight * mask + weights.dice_weight * pairwise_dice(pred, tgt)

    def draw_points(
        self, count: int, device: torch.device, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``float[count, P, 2]`` uniform matching points."""
        return torch.rand(count, self.num_points, 2, device=device, generator=generator)

    @torch.no_grad()
    def cost_matrix(
        self,
        class_logits: torch.Tensor,
        mask_logits: torch.Tensor,
        targets: MaskTargets,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The matching cost of one image: ``float[Q, K + 1]``, ``float[Q, H, W]`` and its T
        targets -> ``float32[Q, T]`` (points drawn from ``generator``)."""
        batch = stack_targets([targets])
        coords = None
        if not targets.box_only:
            coords = self.draw_points(1, mask_logits.device, generator)
        return self.batch_costs(class_logits[None], mask_logits[None], batch, [0], coords)[0]

    @torch.no_grad()
    def __call__(
        self,
        class_logits: Sequence[torch.Tensor],
        mask_logits: Sequence[torch.Tensor],
        targets: Sequence[MaskTargets],
        generator: torch.Generator | None = None,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Match every image (one image per cost call; the training step uses
        :meth:`batch_costs` and :func:`assign` on groups of images).

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
        costs = []
        for cls, masks, tgt in zip(class_logits, mask_logits, targets):
            if len(tgt) == 0:
                costs.append(torch.zeros(1, cls.shape[0], 0))
                continue
            costs.append(self.cost_matrix(cls, masks, tgt, generator)[None])
        matched = assign(costs, [None] * len(costs), [[len(t)] for t in targets])
        return [m[0] for m in matched]


def _select(x: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """``x[rows]`` without a copy when ``rows`` are all of ``x``'s rows in order."""
    if rows == list(range(x.shape[0])):
        return x
    return x[rows]


def assign(
    costs: Sequence[torch.Tensor],
    query_valid: Sequence[torch.Tensor | None],
    num_targets: Sequence[Sequence[int]],
) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Optimal assignments of many cost matrices with one device -> host crossing.

    Args:
        costs: Per group ``float[b_i, Q_i, T_i]`` on any device (one group per label space and
            decoder layer, say).
        query_valid: Per group ``bool[b_i, Q_i]`` proposals that may be matched (None: all).
        num_targets: Per group, per image, its number of targets (host ints; columns past it
            are ignored).
    Returns:
        Per group, per image ``(query_idx int64[T'], target_idx int64[T'])`` on the CPU, sorted
        by query (indices into the group's Q_i proposals and the image's targets).
    Raises:
        ValueError: A non-finite cost.
    """
    if not costs:
        return []
    q_max = max(c.shape[1] for c in costs)
    t_max = max(c.shape[2] for c in costs)
    packed = []
    for cost, valid in zip(costs, query_valid):
        b, q, t = cost.shape
        flag = torch.ones(b, q, 1) if valid is None else valid[..., None]
        block = torch.cat([flag.to(device=cost.device, dtype=torch.float32), cost.float()], 2)
        packed.append(torch.nn.functional.pad(block, (0, t_max - t, 0, q_max - q)))
    device = costs[0].device
    host = torch.cat([p.to(device) for p in packed]).cpu().numpy()  # the one crossing
    out, start = [], 0
    for cost, counts in zip(costs, num_targets):
        group = []
        for j, n in enumerate(counts):
            block = host[start + j, : cost.shape[1]]
            rows = np.flatnonzero(block[:, 0] > 0.5)  # column 0: the query-valid flag
            matrix = block[rows, 1 : n + 1]
            if n == 0 or len(rows) == 0:
                empty = torch.zeros(0, dtype=torch.int64)
                group.append((empty, empty.clone()))
                continue
            if not np.isfinite(matrix).all():
                raise ValueError(
                    f"Non-finite matching cost in image {j} (NaN or inf in the predictions); "
                    "lower the learning rate or enable gradient clipping"
                )
            r, c = linear_sum_assignment(matrix)
            group.append((torch.as_tensor(rows[r], dtype=torch.int64), torch.as_tensor(c)))
        out.append(group)
        start += cost.shape[0]
    return out
