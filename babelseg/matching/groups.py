"""Bookkeeping of a batched matching step: which images are matched together
(:class:`MatchGroup`), which groups reuse another group's assignment (:func:`shared_matches`:
DaTaSeg App. E's auxiliary layers take the last layer's), where every random number of the step
comes from (:class:`DrawPlan`), and the host table of matches that goes to the device in one copy
(:func:`match_table`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from babelseg.data.targets import MaskTargetBatch


@dataclass
class MatchGroup:
    """Images of one decoder layer that share a label space: matched in one batched cost call.

    Attributes:
        class_logits: ``float[b, Q, K + 1]`` (last = no object).
        mask_logits: ``float[b, Q, H, W]``.
        images: The b rows of the batch's targets.
        query_valid: ``bool[b, Q]`` proposals that exist (MERGE leaves gaps); None: all.
        num_valid: Per image, how many proposals exist (the first ones), when the host knows.
        weight: Multiplier of these images' losses (DaTaSeg's per-dataset loss weights).
        tag: Index of the sums this group adds to (a dataset, for the per-dataset logs).
        segment: Groups with the same segment draw their random points together (one per
            (tag, layer) reproduces the per-layer implementation's draws).
        match_from: Index, among the step's groups, of the group whose assignment this one
            reuses instead of being matched itself (same images, same proposal layout: an
            auxiliary layer taking the last layer's matches, DaTaSeg App. E); None: matched on
            its own.
    """

    class_logits: torch.Tensor
    mask_logits: torch.Tensor
    images: list[int]
    query_valid: torch.Tensor | None = None
    num_valid: list[int] | None = None
    weight: float = 1.0
    tag: int = 0
    segment: int = 0
    match_from: int | None = None


Matches = list[tuple[torch.Tensor, torch.Tensor]]
"""Per image of a group, ``(query_idx int64[T'], target_idx int64[T'])`` on the host."""


def shared_matches(groups: Sequence[MatchGroup], own: dict[int, Matches]) -> list[Matches]:
    """Every group's matches: its own (``own[i]``, for groups matched themselves) or, with
    ``match_from``, the same list as the group it names.

    Raises:
        ValueError: ``match_from`` names a group that is not matched itself, or one with other
            images or another number of proposals (its indices would point elsewhere).
    """
    out = []
    for i, g in enumerate(groups):
        j = g.match_from
        if j is None:
            out.append(own[i])
            continue
        if j not in own:
            raise ValueError(f"MatchGroup {i} reuses the matches of group {j}, which has none")
        src = groups[j]
        same_layout = src.class_logits.shape[:2] == g.class_logits.shape[:2]
        if src.images != g.images or not same_layout or src.num_valid != g.num_valid:
            raise ValueError(
                f"MatchGroup {i} reuses the matches of group {j}, but their images "
                f"({g.images} vs {src.images}) or proposals ({tuple(g.class_logits.shape[:2])}, "
                f"{g.num_valid} vs {tuple(src.class_logits.shape[:2])}, {src.num_valid}) differ"
            )
        out.append(own[j])
    return out


def runs_of(column: np.ndarray, value: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` runs of ``value`` in ``column`` (host)."""
    hits = np.flatnonzero(column == value)
    if not len(hits):
        return []
    breaks = np.flatnonzero(np.diff(hits) > 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks + 1, [len(hits)]])
    return [(int(hits[s]), int(hits[e - 1]) + 1) for s, e in zip(starts, ends)]


def match_table(
    groups: Sequence[MatchGroup],
    matches: list[list[tuple[torch.Tensor, torch.Tensor]]],
    targets: MaskTargetBatch,
) -> np.ndarray:
    """Host ``int64[M, 5]`` ``(group, image in group, query, batch image, target)`` of every
    match: mask-target rows first, then box-target rows, each in group / image / query order."""
    mask_rows, box_rows = [], []
    for i, (g, per_image) in enumerate(zip(groups, matches)):
        for j, (query, target) in enumerate(per_image):
            b = g.images[j]
            block = np.stack(
                [
                    np.full(len(query), i),
                    np.full(len(query), j),
                    query.numpy(),
                    np.full(len(query), b),
                    target.numpy(),
                ],
                axis=1,
            )
            (box_rows if targets.box_only[b] else mask_rows).append(block)
    blocks = mask_rows + box_rows
    return np.concatenate(blocks).astype(np.int64) if blocks else np.zeros((0, 5), np.int64)


def gather_matched(
    groups: Sequence[MatchGroup], table: np.ndarray, rows: torch.Tensor
) -> torch.Tensor:
    """``float[M, H, W]`` mask logits of every matched proposal, in table order."""
    parts = []
    for lo, hi in runs_in_order(table[:, 0]):
        g = groups[int(table[lo, 0])]
        num_queries = g.mask_logits.shape[1]
        flat = rows[lo:hi, 1] * num_queries + rows[lo:hi, 2]
        parts.append(g.mask_logits.flatten(0, 1)[flat])
    if not parts:
        g = groups[0]
        return g.mask_logits.new_zeros((0, *g.mask_logits.shape[-2:]))
    return torch.cat(parts)


def runs_in_order(column: np.ndarray) -> list[tuple[int, int]]:
    """Maximal ``[lo, hi)`` runs of equal values in ``column``."""
    if not len(column):
        return []
    edges = np.flatnonzero(np.diff(column)) + 1
    bounds = np.concatenate([[0], edges, [len(column)]])
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


class DrawPlan:
    """Where each random number of a step comes from in one uniform draw, in the order of the
    per-layer implementation: per segment, the matching points of its mask-target images (none
    for a group that reuses another's matches), then the uncertain-point candidates and the extra
    points of its (expected) matched masks."""

    def __init__(
        self,
        *,
        num_points: int,
        oversample_ratio: float,
        importance_sample_ratio: float,
        groups: Sequence[MatchGroup],
        targets: MaskTargetBatch,
    ) -> None:
        p = num_points
        self.num_points = p
        self.num_sampled = int(p * oversample_ratio)
        self.num_random = p - int(importance_sample_ratio * p)
        self.match: list[tuple[int, int]] = []
        self.segments: dict[int, tuple[int, int]] = {}  # segment -> (candidates, extras) start
        cursor, expected = 0, 0
        order = [g.segment for g in groups]
        for i, g in enumerate(groups):
            mask_images = [
                b for b in g.images if not targets.box_only[b] and targets.num_targets[b]
            ]
            if g.match_from is not None:  # takes another group's matches: no matching points
                mask_images = []
            self.match.append((cursor, len(mask_images)))
            cursor += len(mask_images) * p * 2
            rows = g.num_valid or [g.class_logits.shape[1]] * len(g.images)
            expected += sum(
                min(q, targets.num_targets[b])
                for q, b in zip(rows, g.images)
                if not targets.box_only[b] and targets.num_targets[b]
            )
            if i + 1 == len(groups) or order[i + 1] != g.segment:
                if g.segment in self.segments:
                    raise ValueError("MatchGroups of one segment must be next to each other")
                extras = cursor + expected * self.num_sampled * 2
                self.segments[g.segment] = (cursor, extras)
                cursor = extras + expected * self.num_random * 2
                expected = 0
        self.total = cursor
        self.group_segment = order

    def match_coords(self, uniform: torch.Tensor, group: int) -> torch.Tensor | None:
        """``float[b_m, P, 2]`` matching points of a group's mask-target images (None: none)."""
        start, count = self.match[group]
        if not count:
            return None
        return uniform[start : start + count * self.num_points * 2].view(count, -1, 2)

    def loss_uniform(self, uniform: torch.Tensor, table: np.ndarray) -> torch.Tensor:
        """The uniform numbers of the matched masks (table rows whose targets are masks, in
        order): all candidates, then all extra points, as ``uncertain_points`` reads them."""
        segments = np.asarray(self.group_segment)[table[:, 0]] if len(table) else []
        candidates, extras = [], []
        for lo, hi in runs_in_order(np.asarray(segments)):
            n = hi - lo
            cand_start, extra_start = self.segments[int(segments[lo])]
            candidates.append(uniform[cand_start : cand_start + n * self.num_sampled * 2])
            extras.append(uniform[extra_start : extra_start + n * self.num_random * 2])
        return torch.cat(candidates + extras)
