"""What the mask-classification recipes predict per image, before any file format.

The evaluator scores these against the ground truth and the predictor writes them as COCO
panoptic PNG + JSON or COCO instance results; the recipes' post-processing
(``babelseg.models.postprocess``) produces them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SegmentInfo:
    """One predicted panoptic segment.

    Attributes:
        id: Its id in :attr:`PanopticPrediction.segment_ids` (>= 1; 0 means unlabelled).
        category: Class index into the vocabulary asked for.
        score: Confidence in [0, 1].
        is_thing: Whether the category is a countable thing (instances) or stuff (merged).
    """

    id: int
    category: int
    score: float
    is_thing: bool


@dataclass
class PanopticPrediction:
    """A panoptic segmentation of one image.

    Attributes:
        segment_ids: ``int32[H, W]`` segment id per pixel, 0 = unlabelled.
        segments: One entry per id present in ``segment_ids`` (except 0).
    """

    segment_ids: np.ndarray
    segments: list[SegmentInfo]


@dataclass
class InstancePrediction:
    """Scored instance masks of one image (at most the configured top-k).

    Attributes:
        masks: ``bool[N, H, W]``.
        scores: ``float32[N]`` in [0, 1].
        classes: ``int64[N]`` class indices into the vocabulary asked for.
    """

    masks: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
