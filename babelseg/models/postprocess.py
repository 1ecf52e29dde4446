"""Mask proposals of one image -> semantic scores, panoptic segments or scored instances
(Mask2Former's ``semantic_inference`` / ``panoptic_inference`` / ``instance_inference``).

Inputs are one image's mask logits ``float[Q, h, w]`` and class probabilities ``float[Q, K + 1]``
(last = no object; softmax already applied, so the recipe decides temperature and background).
Mask logits are upsampled bilinearly (``align_corners=False``) to the requested ``(H, W)``; they
must cover the same image extent (crop stride padding away first).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from babelseg.models.segments import InstancePrediction, PanopticPrediction, SegmentInfo


def upsample_logits(mask_logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``float[Q, h, w]`` -> ``float[Q, H, W]`` (bilinear; returned as is when already there)."""
    if tuple(mask_logits.shape[-2:]) == tuple(size):
        return mask_logits
    return F.interpolate(mask_logits[None], size=tuple(size), mode="bilinear", align_corners=False)[
        0
    ]


def semantic_scores(
    mask_logits: torch.Tensor, class_probs: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """Per-class scores: the sum over queries of class probability times sigmoid mask.

    Args:
        mask_logits: ``float[Q, h, w]``.
        class_probs: ``float[Q, K + 1]`` (last = no object, dropped).
        size: ``(H, W)`` to predict at.
    Returns:
        ``float[K, H, W]`` (arg-max over K is the semantic prediction).
    """
    masks = upsample_logits(mask_logits.float(), size).sigmoid()
    return torch.einsum("qk,qhw->khw", class_probs[:, :-1].float(), masks)


def panoptic_segments(
    mask_logits: torch.Tensor,
    class_probs: torch.Tensor,
    size: tuple[int, int],
    *,
    is_thing: torch.Tensor,
    object_mask_threshold: float = 0.8,
    overlap_threshold: float = 0.8,
    min_area: int = 0,
) -> PanopticPrediction:
    """Non-overlapping segments (Mask2Former's panoptic inference).

    Queries whose most probable class is "no object", or whose score (that class's probability)
    is not above ``object_mask_threshold``, are dropped. Each pixel goes to the kept query with
    the highest ``score * sigmoid(mask)``; a query keeps the pixels it wins where its own mask is
    >= 0.5, and is dropped when those are fewer than ``overlap_threshold`` times its own mask area
    (``sigmoid >= 0.5``) or than ``min_area``. Queries are then visited in order: a thing query
    becomes a new segment, a stuff query joins the segment of its class when there is one.
    Segment ids count from 1 in that order; a segment's score is the highest score of its queries.

    Args:
        mask_logits: ``float[Q, h, w]``.
        class_probs: ``float[Q, K + 1]`` (last = no object).
        size: ``(H, W)`` to predict at.
        is_thing: ``bool[K]``.
        object_mask_threshold: Minimum class score of a kept query.
        overlap_threshold: Minimum share of a query's mask it must keep after overlaps.
        min_area: Minimum pixels of a kept query's segment part (DaTaSeg drops below 4).
    Returns:
        :class:`PanopticPrediction` at ``size``.
    """
    num_classes = class_probs.shape[1] - 1
    if is_thing.shape != (num_classes,):
        raise ValueError(
            f"is_thing has shape {tuple(is_thing.shape)}, expected ({num_classes},): one flag per "
            "class of the vocabulary"
        )
    height, width = size
    scores, labels = class_probs.float().max(-1)
    keep = (labels != num_classes) & (scores > object_mask_threshold)
    segment_ids = np.zeros((height, width), dtype=np.int32)
    if not bool(keep.any()):
        return PanopticPrediction(segment_ids=segment_ids, segments=[])
    scores, labels = scores[keep], labels[keep]
    masks = upsample_logits(mask_logits[keep].float(), size).sigmoid()  # [k, H, W]
    n = masks.shape[0]
    owner = (scores[:, None, None] * masks).argmax(0)  # [H, W]
    inside = masks.gather(0, owner[None])[0] >= 0.5
    won_area = torch.bincount(owner.flatten(), minlength=n)
    own_area = (masks >= 0.5).flatten(1).sum(1)
    final_area = torch.bincount(owner[inside], minlength=n)
    ok = (won_area > 0) & (own_area > 0) & (final_area > 0) & (final_area >= min_area)
    ok &= won_area >= overlap_threshold * own_area.clamp(min=1)

    # Segment ids in query order (a loop over at most Q scalars; the pixels are vectorised).
    things = is_thing.cpu().numpy()
    query_segment = np.zeros(n + 1, dtype=np.int32)  # index n: unlabelled
    segments: list[SegmentInfo] = []
    stuff_segment: dict[int, int] = {}
    for k, (good, label, score) in enumerate(zip(ok.tolist(), labels.tolist(), scores.tolist())):
        if not good:
            continue
        thing = bool(things[label])
        if not thing and label in stuff_segment:
            seg = stuff_segment[label]
            info = segments[seg - 1]
            info.score = max(info.score, float(score))
        else:
            seg = len(segments) + 1
            segments.append(
                SegmentInfo(id=seg, category=int(label), score=float(score), is_thing=thing)
            )
            if not thing:
                stuff_segment[label] = seg
        query_segment[k] = seg
    pixel_query = torch.where(inside, owner, torch.full_like(owner, n))
    segment_ids = query_segment[pixel_query.cpu().numpy()]
    return PanopticPrediction(segment_ids=segment_ids, segments=segments)


def instance_masks(
    mask_logits: torch.Tensor,
    class_probs: torch.Tensor,
    size: tuple[int, int],
    *,
    top_k: int = 100,
    allowed: torch.Tensor | None = None,
    min_area: int = 0,
    score_threshold: float | None = None,
) -> InstancePrediction:
    """Scored instance masks (Mask2Former's instance inference).

    The ``top_k`` highest (query, class) probabilities over the K classes (a query may appear
    with several classes) are kept; each mask is ``mask logit > 0`` and its score the class
    probability times the mean sigmoid mask inside it. Queries whose mask has fewer than
    ``min_area`` pixels never enter the top-k; with ``score_threshold``, masks whose score is not
    above it are dropped after. Sorted by score, highest first.

    Args:
        mask_logits: ``float[Q, h, w]``.
        class_probs: ``float[Q, K + 1]`` (last = no object).
        size: ``(H, W)`` to predict at.
        top_k: Maximum instances.
        allowed: Optional ``bool[K]``: only these classes (e.g. the things of a panoptic
            vocabulary).
        min_area: Minimum pixels of a returned mask (DaTaSeg drops below 4; 0: any).
        score_threshold: Only masks scoring above it (DaTaSeg: 0.0; None: all top-k).
    Returns:
        :class:`InstancePrediction` at ``size``.
    """
    num_queries, num_outputs = class_probs.shape
    num_classes = num_outputs - 1
    probs = class_probs[:, :-1].float()
    if allowed is not None:
        probs = torch.where(allowed.to(probs.device)[None, :], probs, torch.full_like(probs, -1.0))
    if min_area > 0:
        upsampled = upsample_logits(mask_logits.float(), size)
        big_enough = (upsampled > 0).flatten(1).sum(1) >= min_area  # [Q]
        probs = torch.where(big_enough[:, None], probs, torch.full_like(probs, -1.0))
    flat = probs.flatten()
    k = min(top_k, int((flat >= 0).sum()))
    top_scores, top_index = flat.topk(k)
    query = torch.div(top_index, num_classes, rounding_mode="floor")
    classes = top_index % num_classes
    masks = upsample_logits(mask_logits[query].float(), size)
    binary = masks > 0
    mask_prob = (masks.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    final = top_scores * mask_prob
    order = final.argsort(descending=True)
    if score_threshold is not None:
        order = order[final[order] > score_threshold]
    return InstancePrediction(
        masks=binary[order].cpu().numpy(),
        scores=final[order].cpu().numpy().astype(np.float32),
        classes=classes[order].cpu().numpy().astype(np.int64),
    )
