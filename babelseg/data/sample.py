"""The unit every reader yields and every pipeline step transforms."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np


class Task(str, Enum):
    """What a dataset's ground truth supports evaluating."""

    SEMANTIC = "semantic"
    PANOPTIC = "panoptic"
    INSTANCE = "instance"


class Annotation(str, Enum):
    """How trustworthy / complete a dataset's labels are (SentenceLabels.txt section 3)."""

    CLEAN = "clean"  # accurate masks (L_HD)
    NOISY = "noisy"  # coarse masks with errors (L_LD, loss truncation)
    BOXES = "boxes"  # boxes only (L_WD distillation / DaTaSeg projection loss)


@dataclass
class Sample:
    """One image and its targets, in the label space of its dataset.

    Arrays stay numpy until collation so the augmentation library can work on them.

    Attributes:
        image: ``uint8[H, W, 3]`` RGB image.
        dataset: Name of the dataset it comes from.
        task: The dataset's task.
        annotation: The dataset's annotation kind.
        image_id: Stable identifier (file stem) used for outputs and COCO ids.
        semantic: ``int64[H, W]`` class indices, ``IGNORE_INDEX`` (255) where unlabelled; None
            for boxes-only data.
        masks: ``bool[N, H, W]`` instance / segment masks (panoptic: every segment, stuff
            included; instance: things only); None when the dataset has none.
        classes: ``int64[N]`` class index of each mask or box.
        iscrowd: ``bool[N]`` crowd flag of each mask or box.
        boxes: ``float32[N, 4]`` boxes ``(x0, y0, x1, y1)`` in pixels, one per instance (derived
            from masks when the dataset has masks).
        segment_ids: ``int64[N]`` panoptic segment ids as on disk (panoptic data only).
        path: Path of the image file (for error messages).
    """

    image: np.ndarray
    dataset: str
    task: Task
    annotation: Annotation
    image_id: str
    semantic: np.ndarray | None = None
    masks: np.ndarray | None = None
    classes: np.ndarray | None = None
    iscrowd: np.ndarray | None = None
    boxes: np.ndarray | None = None
    segment_ids: np.ndarray | None = None
    path: str = ""
    extras: dict = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    def replace(self, **changes) -> Sample:
        """A shallow copy with some fields changed."""
        return replace(self, **changes)
