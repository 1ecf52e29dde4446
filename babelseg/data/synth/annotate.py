"""Annotation: a dataset's view of a scene as labelled segments, clean or noisy.

World regions become segments of the dataset's labels: each thing region its own segment, all
regions of one stuff label one segment, unlabelled classes void. Then, as real datasets do:
overlapping groups of things become crowd segments, a void border is drawn around objects
(VOC), and noisy datasets get coarse jittered polygons, dilated/eroded stuff and swapped labels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from babelseg.data.synth.layout import SceneLayout
from babelseg.data.synth.views import CrowdSpec, DatasetView, NoiseSpec
from babelseg.labels.space import IGNORE_INDEX


@dataclass
class Segment:
    """One annotated segment.

    Attributes:
        id: Segment id in ``Annotation.seg_map`` (1-based; 0 is void).
        label: Label index in the dataset's label space.
        is_thing: Whether the label is a thing (its own instance).
        iscrowd: A crowd segment (a group of things annotated as one).
        regions: Ids of the layout regions it came from.
    """

    id: int
    label: int
    is_thing: bool
    iscrowd: bool = False
    regions: tuple[int, ...] = ()


@dataclass
class Annotation:
    """Segments of one image in a dataset's label space.

    Attributes:
        seg_map: ``int32[H, W]`` segment id per pixel, 0 for void (unlabelled).
        segments: Segments in painter's order (``segments[i].id == i + 1``).
    """

    seg_map: np.ndarray
    segments: list[Segment]

    def semantic(self) -> np.ndarray:
        """``uint8[H, W]`` label index per pixel, ``IGNORE_INDEX`` on void."""
        lut = np.array([IGNORE_INDEX] + [s.label for s in self.segments], np.uint8)
        return lut[self.seg_map]


def build_segments(layout: SceneLayout, view: DatasetView, rng: np.random.Generator) -> Annotation:
    """The clean annotation of a layout in ``view``'s taxonomy (crowds included)."""
    lut = view.lookup()
    seg_of_region = np.zeros(len(layout.regions) + 1, np.int32)
    segments: list[Segment] = []
    stuff: dict[int, Segment] = {}
    groups: dict[tuple[int, int], list[Segment]] = {}
    for r in layout.regions:
        label = int(lut[r.cls])
        if r.area == 0 or label == IGNORE_INDEX:
            continue
        if not view.labels[label].is_thing:
            if label not in stuff:
                stuff[label] = Segment(len(segments) + 1, label, False)
                segments.append(stuff[label])
            seg = stuff[label]
        else:
            seg = Segment(len(segments) + 1, label, True)
            segments.append(seg)
            if r.group:
                groups.setdefault((r.group, label), []).append(seg)
        seg.regions += (r.id,)
        seg_of_region[r.id] = seg.id
    merged = _crowds(groups, view.crowd, rng) if view.crowd is not None else {}
    for seg in segments:
        if seg.id in merged:
            target = merged[seg.id]
            target.regions += seg.regions
            seg_of_region[list(seg.regions)] = target.id
    keep = [s for s in segments if s.id not in merged]
    return _renumber(Annotation(seg_of_region[layout.region_map], keep))


def _crowds(
    groups: dict[tuple[int, int], list[Segment]], crowd: CrowdSpec, rng: np.random.Generator
) -> dict[int, Segment]:
    """``{segment id: crowd segment it merges into}`` for groups that become crowds."""
    merged: dict[int, Segment] = {}
    for key in sorted(groups):
        members = groups[key]
        if len(members) >= crowd.min_members and rng.random() < crowd.prob:
            members[0].iscrowd = True
            for m in members[1:]:
                merged[m.id] = members[0]
    return merged


def _renumber(ann: Annotation) -> Annotation:
    """Give segments consecutive ids 1..N (in order) and drop the empty ones."""
    areas = np.bincount(
        ann.seg_map.ravel(), minlength=max((s.id for s in ann.segments), default=0) + 1
    )
    keep = [s for s in ann.segments if areas[s.id] > 0]
    lut = np.zeros(len(areas), np.int32)
    for new_id, s in enumerate(keep, start=1):
        lut[s.id] = new_id
    return Annotation(lut[ann.seg_map], [replace(s, id=i) for i, s in enumerate(keep, start=1)])


def add_void_border(ann: Annotation, width: int) -> Annotation:
    """Void the pixels within ``width`` of a thing's outline, on its outside (VOC borders)."""
    if width <= 0:
        return ann
    out = ann.seg_map.copy()
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * width + 1, 2 * width + 1))
    for seg in ann.segments:
        if not seg.is_thing:
            continue
        mask = ann.seg_map == seg.id
        ring = (cv2.dilate(mask.astype(np.uint8), kernel) > 0) & ~mask
        in_front = np.isin(
            ann.seg_map, [s.id for s in ann.segments if s.is_thing and s.id > seg.id]
        )
        out[ring & ~in_front] = 0
    return _renumber(Annotation(out, ann.segments))


def add_noise(
    ann: Annotation, noise: NoiseSpec, view: DatasetView, rng: np.random.Generator
) -> Annotation:
    """Coarse, imperfect annotation: stuff dilated or eroded, things traced as jittered
    polygons (pixels they no longer cover become void), parts of things missed (labelled as
    their surroundings, when ``noise.missing_prob`` > 0), some segments given a wrong label."""
    out = ann.seg_map.copy()
    things = np.isin(ann.seg_map, [s.id for s in ann.segments if s.is_thing])
    for seg in ann.segments:
        if seg.is_thing or rng.random() >= noise.morph_prob:
            continue
        r = int(rng.integers(noise.morph_radius[0], noise.morph_radius[1] + 1))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        mask = (ann.seg_map == seg.id).astype(np.uint8)
        if rng.random() < 0.5:
            out[(cv2.dilate(mask, kernel) > 0) & ~things] = seg.id
        else:
            out[(mask > 0) & (cv2.erode(mask, kernel) == 0)] = 0
    for seg in ann.segments:
        if not seg.is_thing:
            continue
        mask = (ann.seg_map == seg.id).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        out[out == seg.id] = 0
        for contour in contours:
            eps = noise.tolerance * rng.uniform(0.5, 1.5)
            poly = cv2.approxPolyDP(contour, eps, True).astype(np.float64)
            poly += rng.normal(0.0, noise.jitter, poly.shape)
            cv2.fillPoly(out, [np.round(poly).astype(np.int32)], int(seg.id))
    if noise.missing_prob > 0:  # no extra random draws for worlds without missed parts
        for seg in ann.segments:
            if seg.is_thing and rng.random() < noise.missing_prob:
                _miss_part(out, seg.id, noise.missing_fraction, rng)
    thing_labels = [i for i, lab in enumerate(view.labels) if lab.is_thing]
    stuff_labels = [i for i, lab in enumerate(view.labels) if not lab.is_thing]
    segments = []
    for seg in ann.segments:
        label = seg.label
        if rng.random() < noise.swap_prob:
            pool = [i for i in (thing_labels if seg.is_thing else stuff_labels) if i != seg.label]
            if pool:
                label = int(rng.choice(pool))
        segments.append(replace(seg, label=label))
    return _renumber(Annotation(out, segments))


def _miss_part(
    seg_map: np.ndarray, seg_id: int, fraction: tuple[float, float], rng: np.random.Generator
) -> None:
    """In place: the annotator misses a slab of segment ``seg_id`` (``int32[H, W]`` map).

    A share in ``fraction`` of the segment's bounding box, cut from a random side, is relabelled
    with the segment that is most common in a 2-pixel ring around the segment (void if none),
    as when an OpenImages polygon leaves out a leg or a wheel.
    """
    mask = seg_map == seg_id
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return
    share = rng.uniform(fraction[0], fraction[1])
    side = int(rng.integers(4))
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    part = np.zeros_like(mask)
    if side == 0:
        part[y0 : y0 + max(1, round(share * (y1 - y0))), :] = True
    elif side == 1:
        part[y1 - max(1, round(share * (y1 - y0))) : y1, :] = True
    elif side == 2:
        part[:, x0 : x0 + max(1, round(share * (x1 - x0)))] = True
    else:
        part[:, x1 - max(1, round(share * (x1 - x0))) : x1] = True
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5))
    ring = (cv2.dilate(mask.astype(np.uint8), kernel) > 0) & ~mask
    around = seg_map[ring]
    around = around[around > 0]
    fill = int(np.bincount(around).argmax()) if len(around) else 0
    seg_map[mask & part] = fill
