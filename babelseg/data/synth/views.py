"""Dataset views: how one dataset sees the world (style, scene mix, taxonomy, format).

A view maps every world class to one of its labels, to ``ignore`` (left unlabelled) or, through
``unlisted``, folds the classes it does not list into ``ignore`` or a ``background`` label.
Labels are ordered by first appearance in ``taxonomy``, after the ``unlisted`` label when that is
not ``ignore`` (VOC convention: background is 0); a label covering one world class
inherits that class's description, any other label needs one in ``descriptions``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from babelseg.labels.space import IGNORE_INDEX, ClassDef, LabelSpace, default_color

FORMAT_TASKS = {
    "semantic-png": ("semantic",),
    "coco-panoptic": ("panoptic", "semantic"),
    "coco-instances": ("instance",),
}
ANNOTATIONS = ("clean", "noisy", "boxes")
AUGMENTATION_KEYS = ("crop", "scale", "resize_short", "flip", "color_jitter", "blur")
PNG_MODES = ("L", "P", "I;16")
IGNORE = "ignore"


@dataclass(frozen=True)
class StyleSpec:
    """Domain style applied to rendered images (values for a float image in 0..1).

    Attributes:
        cast: RGB gains (colour cast). contrast: gain around 0.5. brightness: offset.
        saturation: gain around grey. noise: Gaussian sigma in 0..255 units. blur: Gaussian
        sigma in pixels. jitter: per-image random change of brightness and contrast.
    """

    cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    contrast: float = 1.0
    brightness: float = 0.0
    saturation: float = 1.0
    noise: float = 2.0
    blur: float = 0.0
    jitter: float = 0.03


@dataclass(frozen=True)
class NoiseSpec:
    """Annotation noise: coarse jittered polygons, dilation/erosion, blob label swaps, and
    (OpenImages-like) missing parts of objects that take the label of their surroundings.

    Attributes:
        tolerance: Polygon simplification tolerance in pixels (``cv2.approxPolyDP``).
        jitter: Vertex jitter sigma in pixels.
        morph_prob: Probability that a stuff segment is dilated or eroded.
        morph_radius: Radius range of that dilation/erosion in pixels.
        swap_prob: Probability per segment that it gets a wrong (random) label.
        missing_prob: Probability per thing segment that a part of it is missed by the
            annotator: the part takes the label of the segment around the object (or void).
        missing_fraction: Range of the share of the object's bounding box (cut from one side)
            that is missed.
        splits: Splits whose labels are noisy (others are clean, so evaluation is exact).
    """

    tolerance: float = 1.5
    jitter: float = 1.0
    morph_prob: float = 0.5
    morph_radius: tuple[int, int] = (1, 2)
    swap_prob: float = 0.05
    missing_prob: float = 0.0
    missing_fraction: tuple[float, float] = (0.2, 0.5)
    splits: tuple[str, ...] = ("train",)


@dataclass(frozen=True)
class CrowdSpec:
    """Overlapping groups of ``min_members`` or more same-label things become one crowd segment."""

    prob: float = 0.5
    min_members: int = 3


@dataclass(frozen=True)
class LabelDef:
    """One label of a dataset view and the world classes it covers."""

    name: str
    description: str
    is_thing: bool
    value: int
    world_classes: tuple[str, ...]


@dataclass(frozen=True)
class DatasetView:
    """A validated dataset view (see ``default_world.yaml`` for every key)."""

    name: str
    text_context: str
    format: str
    task: str
    annotation: str
    heldout: bool
    scenes: dict[str, float]
    image_size: tuple[int, int]
    size_jitter: float
    image_format: str
    jpeg_quality: int
    style: StyleSpec
    encoding: dict[str, Any]
    taxonomy: dict[str, str]
    unlisted: str
    descriptions: dict[str, str]
    novel_labels: tuple[str, ...]
    splits: dict[str, dict[str, int]]
    augmentation: dict[str, Any]
    noise: NoiseSpec | None = None
    crowd: CrowdSpec | None = None
    labels: tuple[LabelDef, ...] = field(default=(), compare=False)
    world_to_label: tuple[int, ...] = field(default=(), compare=False)

    @property
    def label_names(self) -> list[str]:
        return [lab.name for lab in self.labels]

    @property
    def ignored_classes(self) -> list[str]:
        """World classes this dataset leaves unlabelled."""
        return [c for c, lab in self.taxonomy.items() if lab == IGNORE]

    def lookup(self) -> np.ndarray:
        """``int64[C]``: world class index -> label index (``IGNORE_INDEX`` when unlabelled)."""
        table = np.array(self.world_to_label, dtype=np.int64)
        return np.where(table < 0, IGNORE_INDEX, table)

    def label_space(self) -> LabelSpace:
        """The dataset's label space as its ``labels.yaml`` declares it (values as on disk,
        COCO category ids for COCO formats; values before ``reduce_zero_label``)."""
        classes = [
            ClassDef(
                name=lab.name,
                description=lab.description,
                is_thing=lab.is_thing,
                value=lab.value,
                color=default_color(i),
            )
            for i, lab in enumerate(self.labels)
        ]
        ignore = self.encoding.get("unlabelled_value", IGNORE_INDEX)
        if self.encoding.get("reduce_zero_label") or self.format != "semantic-png":
            ignore = IGNORE_INDEX
        return LabelSpace(classes, name=self.name, ignore_values=(int(ignore),))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("labels", "world_to_label"):
            data.pop(key)
        return {k: v for k, v in data.items() if v is not None}
