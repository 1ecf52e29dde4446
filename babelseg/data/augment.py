"""Dataset-aware augmentation (LMSeg.txt section 3.5) built on albumentations.

Every dataset declares its own pipeline in ``datasets.yaml`` under ``augmentation:``::

    augmentation:
      resize_short: 512          # base short side (pixels) before the random scale
      scale: [0.5, 2.0]          # random rescale factor, uniform in [lo, hi]
      crop: [512, 512]           # [h, w]: random crop; smaller images are padded
      flip: true                 # random horizontal flip (p = 0.5)
      color_jitter: 0.2          # or {brightness, contrast, saturation, hue}
      blur: 0.1                  # probability of a Gaussian blur

Training order: resize short side -> random scale -> random crop / pad -> flip -> colour jitter
-> blur. Geometry is applied to the image (bilinear), the semantic map and the instance masks
(nearest) and the boxes alike. Padding is recorded in ``sample.extras["valid"]`` (``bool[H, W]``,
False on padding) and the padded semantic pixels are ``IGNORE_INDEX``; padded image pixels are 0,
padded mask pixels are 0.

Boxes use continuous pixel-edge coordinates ``(x0, y0, x1, y1)``: a mask covering columns
``c0..c1`` has ``x0 = c0`` and ``x1 = c1 + 1`` (the COCO convention), so a horizontal flip of an
image of width ``W`` maps ``x0, x1`` to ``W - x1, W - x0`` exactly.

Evaluation (``train=False``) has no randomness: the image's short side is optionally resized to
``eval_short_side`` (falling back to the spec's ``resize_short``), and every target (semantic map,
masks, boxes) stays at the original resolution, so metrics are computed where the labels live;
predictions must be resized to the target size.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# albumentations asks PyPI for a newer version on import (a network call in every worker).
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A  # noqa: E402
import cv2  # noqa: E402

from babelseg.data.readers.coco_instances import masks_to_boxes  # noqa: E402
from babelseg.data.sample import Sample  # noqa: E402
from babelseg.labels.space import IGNORE_INDEX  # noqa: E402

AUGMENT_KEYS = ("crop", "scale", "resize_short", "flip", "color_jitter", "blur")
"""Keys an ``augmentation:`` mapping may use."""

JITTER_KEYS = ("brightness", "contrast", "saturation", "hue")
_SEED_BOUND = 2**63
_NEAREST = cv2.INTER_NEAREST_EXACT
"""Pixel-centre aligned nearest neighbour: labels stay aligned with the bilinear image
(``cv2.INTER_NEAREST`` is shifted by up to half a source pixel)."""


@dataclass(frozen=True)
class AugmentSpec:
    """A validated per-dataset augmentation spec (see the module docstring for the keys).

    Attributes:
        crop: ``(h, w)`` of the training crop, or None for no crop.
        scale: ``(lo, hi)`` random rescale factor range, or None.
        resize_short: Base short side in pixels, or None.
        flip: Random horizontal flip.
        color_jitter: ``{brightness, contrast, saturation, hue}`` magnitudes (0 = off).
        blur: Probability of a Gaussian blur.
    """

    crop: tuple[int, int] | None = None
    scale: tuple[float, float] | None = None
    resize_short: int | None = None
    flip: bool = False
    color_jitter: dict[str, float] = field(default_factory=dict)
    blur: float = 0.0


def _positive_int(value: Any, what: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{where}: '{what}' must be a positive integer, got {value!r}.")
    return int(value)


def _number(value: Any, what: str, where: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{where}: '{what}' must be a number, got {value!r}.")
    if not lo <= float(value) <= hi:
        raise ValueError(f"{where}: '{what}' must lie in [{lo}, {hi}], got {value!r}.")
    return float(value)


def parse_augment_spec(spec: Mapping[str, Any] | None, *, name: str = "") -> AugmentSpec:
    """Validate an ``augmentation:`` mapping.

    Args:
        spec: The mapping from ``datasets.yaml`` (None or empty: no augmentation).
        name: Dataset name, for error messages.
    Returns:
        The validated spec.
    Raises:
        ValueError: unknown keys (the valid ones are listed) or invalid values.
    """
    where = f"augmentation of dataset '{name}'" if name else "augmentation"
    spec = dict(spec or {})
    unknown = sorted(set(spec) - set(AUGMENT_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; valid keys: {list(AUGMENT_KEYS)}.")
    crop = None
    if spec.get("crop") is not None:
        c = spec["crop"]
        if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            c = (c, c)
        if not isinstance(c, Sequence) or len(c) != 2:
            raise ValueError(f"{where}: 'crop' must be [h, w] (or one int), got {c!r}.")
        crop = (_positive_int(c[0], "crop", where), _positive_int(c[1], "crop", where))
    scale = None
    if spec.get("scale") is not None:
        s = spec["scale"]
        if not isinstance(s, Sequence) or len(s) != 2:
            raise ValueError(f"{where}: 'scale' must be [lo, hi], got {s!r}.")
        lo, hi = (_number(v, "scale", where, 1e-3, 1e3) for v in s)
        if lo > hi:
            raise ValueError(f"{where}: 'scale' [lo, hi] needs lo <= hi, got {list(s)}.")
        scale = (lo, hi)
    resize_short = None
    if spec.get("resize_short") is not None:
        resize_short = _positive_int(spec["resize_short"], "resize_short", where)
    flip = spec.get("flip", False)
    if not isinstance(flip, bool):
        raise ValueError(f"{where}: 'flip' must be true or false, got {flip!r}.")
    jitter: dict[str, float] = {}
    cj = spec.get("color_jitter")
    if isinstance(cj, Mapping):
        bad = sorted(set(cj) - set(JITTER_KEYS))
        if bad:
            raise ValueError(
                f"{where}: unknown color_jitter keys {bad}; valid keys: {list(JITTER_KEYS)}."
            )
        for k, v in cj.items():
            jitter[k] = _number(v, f"color_jitter.{k}", where, 0.0, 0.5 if k == "hue" else 1.0)
    elif cj is not None:
        v = _number(cj, "color_jitter", where, 0.0, 1.0)
        jitter = {"brightness": v, "contrast": v, "saturation": v}
    blur = _number(spec.get("blur", 0.0), "blur", where, 0.0, 1.0)
    return AugmentSpec(
        crop=crop, scale=scale, resize_short=resize_short, flip=flip, color_jitter=jitter, blur=blur
    )


def _generators(rng: np.random.Generator | int) -> tuple[np.random.Generator, random.Random]:
    """Fresh numpy and Python generators from a generator (one draw) or a non-negative seed."""
    if isinstance(rng, np.random.Generator):
        seed = int(rng.integers(_SEED_BOUND))
    elif isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        seed = int(rng)
    else:
        raise ValueError(f"rng must be a numpy Generator or a non-negative int, got {rng!r}.")
    return np.random.default_rng(seed), random.Random(seed)


class Augmentation:
    """One dataset's augmentation pipeline; call it on a Sample with a seed.

    Args:
        spec: The validated spec.
        train: Random training pipeline (True) or deterministic evaluation resize (False).
        eval_short_side: Evaluation short side; None falls back to ``spec.resize_short``.

    Calling ``aug(sample, rng)`` returns a new Sample; the same ``(sample, seed)`` always gives
    the same result. See the module docstring for what happens to each target. A call sets the
    pipeline's random state, so one instance must not be shared by concurrent threads
    (DataLoader worker processes each hold their own copy).
    """

    def __init__(self, *, spec: AugmentSpec, train: bool, eval_short_side: int | None = None):
        self.spec = spec
        self.train = train
        self.eval_short_side = eval_short_side if eval_short_side else spec.resize_short
        self._geometric = bool(spec.resize_short or spec.scale or spec.crop or spec.flip)
        self._compose = self._build()

    def _build(self) -> A.Compose | None:
        s = self.spec
        if not self.train:
            if not self.eval_short_side:
                return None
            return A.Compose([A.SmallestMaxSize(max_size=self.eval_short_side, p=1.0)])
        ops: list[Any] = []
        if s.resize_short:
            ops.append(
                A.SmallestMaxSize(max_size=s.resize_short, mask_interpolation=_NEAREST, p=1.0)
            )
        if s.scale and s.scale != (1.0, 1.0):
            limit = (s.scale[0] - 1.0, s.scale[1] - 1.0)
            ops.append(A.RandomScale(scale_limit=limit, mask_interpolation=_NEAREST, p=1.0))
        if s.crop:
            ops.append(
                A.RandomCrop(
                    height=s.crop[0],
                    width=s.crop[1],
                    pad_if_needed=True,
                    pad_position="top_left",
                    border_mode=cv2.BORDER_CONSTANT,
                    fill=0,
                    fill_mask=0,
                    p=1.0,
                )
            )
        if s.flip:
            ops.append(A.HorizontalFlip(p=0.5))
        if any(v > 0 for v in s.color_jitter.values()):
            cj = {k: s.color_jitter.get(k, 0.0) for k in JITTER_KEYS}
            ops.append(A.ColorJitter(**cj, p=1.0))
        if s.blur > 0:
            ops.append(A.GaussianBlur(sigma_limit=(0.1, 2.0), p=s.blur))
        if not self._geometric:
            return A.Compose(ops)
        bbox_params = A.BboxParams(
            format="pascal_voc", label_fields=["box_index"], clip=True, filter_invalid_bboxes=True
        )
        return A.Compose(ops, bbox_params=bbox_params)

    def __repr__(self) -> str:
        return f"Augmentation(train={self.train}, spec={self.spec})"

    def __call__(self, sample: Sample, rng: np.random.Generator | int) -> Sample:
        """Augment one sample.

        Args:
            sample: The sample (image ``uint8[H, W, 3]`` and its targets).
            rng: A generator (one number is drawn from it) or a non-negative seed.
        Returns:
            The augmented sample, with ``extras["valid"]`` (``bool[H', W']``) set.
        """
        gen, py = _generators(rng)
        if self._compose is None:
            valid = np.ones(sample.image.shape[:2], dtype=bool)
            return sample.replace(extras={**sample.extras, "valid": valid})
        self._compose.set_random_state(gen, py)
        if not self.train:
            image = self._compose(image=sample.image)["image"]
            valid = np.ones(image.shape[:2], dtype=bool)
            return sample.replace(image=image, extras={**sample.extras, "valid": valid})
        return self._train_call(sample)

    def _train_call(self, sample: Sample) -> Sample:
        h, w = sample.image.shape[:2]
        # Channel 0 of `masks` is the validity mask: padding fills it with 0.
        planes = [np.ones((1, h, w), dtype=np.uint8)]
        has_masks = sample.masks is not None
        if has_masks:
            planes.append(np.asarray(sample.masks, dtype=np.uint8).reshape(-1, h, w))
        data: dict[str, Any] = {"image": sample.image, "masks": np.concatenate(planes)}
        if sample.semantic is not None:
            sem = np.asarray(sample.semantic)
            if sem.shape != (h, w):
                raise ValueError(
                    f"{sample.path or sample.image_id}: semantic map {sem.shape} does not match "
                    f"the image {(h, w)}; fix the label file."
                )
            if sem.min(initial=0) < 0 or sem.max(initial=0) > np.iinfo(np.uint16).max:
                raise ValueError(f"{sample.path}: semantic values must lie in 0..65535.")
            data["mask"] = sem.astype(np.uint16)
        use_boxes = not has_masks and sample.boxes is not None and len(sample.boxes) > 0
        if not self._geometric:
            use_boxes = False  # boxes are unchanged; no bbox processor is attached
        elif use_boxes:
            data["bboxes"] = np.asarray(sample.boxes, dtype=np.float32).reshape(-1, 4)
            data["box_index"] = np.arange(len(data["bboxes"]))
        else:
            data["bboxes"] = np.zeros((0, 4), dtype=np.float32)
            data["box_index"] = np.zeros(0, dtype=np.int64)
        out = self._compose(**data)

        planes_out = np.asarray(out["masks"])
        valid = planes_out[0].astype(bool)
        changes: dict[str, Any] = {
            "image": out["image"],
            "extras": {**sample.extras, "valid": valid},
        }
        if sample.semantic is not None:
            sem = out["mask"].astype(np.int64)
            sem[~valid] = IGNORE_INDEX
            changes["semantic"] = sem
        keep: np.ndarray | None = None
        if has_masks:
            masks = planes_out[1:].astype(bool)
            keep = masks.any(axis=(1, 2))  # [N]; N = 0 (no kept target) is a valid sample
            changes["masks"] = masks[keep]
            changes["boxes"] = masks_to_boxes(masks[keep])
        elif use_boxes:
            # albumentations round-trips through normalised coordinates: snap the float noise
            # (1e-7 px) so that boxes clipped to nothing are recognised as degenerate.
            boxes = np.round(np.asarray(out["bboxes"], dtype=np.float64), 3).astype(np.float32)
            boxes = boxes.reshape(-1, 4)
            index = np.asarray(out["box_index"], dtype=np.int64)
            ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            changes["boxes"] = boxes[ok]
            keep = index[ok]
        if keep is not None:
            for key in ("classes", "iscrowd", "segment_ids"):
                value = getattr(sample, key)
                if value is not None:
                    changes[key] = np.asarray(value)[keep]
        return sample.replace(**changes)


def shared_augmentation(
    shared: Mapping[str, Any] | str, declared: Mapping[str, Mapping[str, Any] | None]
) -> dict[str, Any]:
    """One pipeline for every dataset: LMSeg's baseline without dataset-aware augmentation.

    Args:
        shared: An ``augmentation:`` mapping declared once, or ``"union"``: the union of the
            datasets' own pipelines (the largest crop, the widest scale range, flip if any
            dataset flips, the strongest colour jitter and blur; no per-dataset
            ``resize_short``, since a shared pipeline has no per-dataset base size).
        declared: ``{dataset: its own augmentation mapping or None}``.
    Returns:
        The shared ``augmentation:`` mapping (keys ``AUGMENT_KEYS``).
    Raises:
        ValueError: ``shared`` is neither a mapping nor ``"union"``, or a spec is invalid.
    """
    if isinstance(shared, Mapping):
        parse_augment_spec(shared, name="shared")
        return dict(shared)
    if shared != "union":
        raise ValueError(
            f"data.shared_augmentation must be an augmentation mapping or 'union', got {shared!r}."
        )
    specs = [parse_augment_spec(s, name=n) for n, s in declared.items()]
    crops = [s.crop for s in specs if s.crop is not None]
    scales = [s.scale or (1.0, 1.0) for s in specs]
    jitter = {k: max(s.color_jitter.get(k, 0.0) for s in specs) for k in JITTER_KEYS}
    out: dict[str, Any] = {
        "flip": any(s.flip for s in specs),
        "color_jitter": {k: v for k, v in jitter.items() if v > 0},
        "blur": max((s.blur for s in specs), default=0.0),
    }
    if crops:
        out["crop"] = [max(c[0] for c in crops), max(c[1] for c in crops)]
    if any(s.scale for s in specs):
        out["scale"] = [min(lo for lo, _ in scales), max(hi for _, hi in scales)]
    return out


def build_augmentation(
    spec: Mapping[str, Any] | None,
    *,
    train: bool,
    crop: tuple[int, int] | None = None,
    eval_short_side: int | None = None,
    name: str = "",
) -> Augmentation:
    """Build a dataset's augmentation from its ``augmentation:`` mapping.

    Args:
        spec: The dataset's mapping (keys ``AUGMENT_KEYS``), or None.
        train: Training pipeline (random) or evaluation (deterministic resize only).
        crop: Default ``(h, w)`` training crop for datasets whose spec has no ``crop``.
        eval_short_side: Evaluation short side (None: the spec's ``resize_short``, or no resize).
        name: Dataset name, for error messages.
    Returns:
        The pipeline.
    Raises:
        ValueError: unknown keys or invalid values.
    """
    parsed = parse_augment_spec(spec, name=name)
    if parsed.crop is None and crop is not None:
        c = (int(crop[0]), int(crop[1]))
        if min(c) <= 0:
            raise ValueError(f"crop must be two positive sizes [h, w], got {crop!r}.")
        parsed = dataclasses.replace(parsed, crop=c)
    if eval_short_side is not None and eval_short_side <= 0:
        raise ValueError(f"eval_short_side must be positive, got {eval_short_side!r}.")
    return Augmentation(spec=parsed, train=train, eval_short_side=eval_short_side)
