"""What :meth:`babelseg.inference.api.SegmentationModel.predict` returns for one image."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from babelseg.inference.full_resolution import probabilities
from babelseg.inference.label_png import indices_to_values, write_label_png
from babelseg.inference.visualize import overlay
from babelseg.inference.windows import STRIDE
from babelseg.labels.space import LabelSpace
from babelseg.models.segments import InstancePrediction, PanopticPrediction


@dataclass
class Segment:
    """One labelled region of an image.

    Attributes:
        mask: ``bool[H, W]``.
        label: The class name (from the vocabulary asked for).
        label_index: Its index into the vocabulary.
        score: Confidence in [0, 1]: for semantic segments the mean class probability over the
            mask; for panoptic segments and instances the query's class probability.
        id: Segment id: the panoptic id in :attr:`SegmentationResult.panoptic_map`, else
            ``label_index + 1`` (semantic) or the instance's rank + 1.
    """

    mask: np.ndarray
    label: str
    label_index: int
    score: float
    id: int

    @property
    def area(self) -> int:
        """Pixels in the mask."""
        return int(self.mask.sum())

    def __repr__(self) -> str:
        return f"Segment(label={self.label!r}, score={self.score:.3f}, area={self.area})"


@dataclass
class SegmentationResult:
    """One image's prediction in the vocabulary asked for.

    Attributes:
        label_map: ``int64[H, W]`` class indices into :attr:`labels`.
        vocabulary: The label space asked for (names, on-disk values, colours).
        scores: ``float32[K, ceil(H/4), ceil(W/4)]`` class scores on the model's stride-4 grid
            (scaled cosine similarities for the per-pixel recipes, class masses for the
            mask-classification ones); see :meth:`probabilities_at` and :meth:`heatmap`.
        image: ``uint8[H, W, 3]`` the image predicted (for overlays).
        normalisation: How :attr:`scores` become probabilities (``softmax`` or ``sum``).
        class_area: ``int64[K]`` pixels per class in :attr:`label_map`.
        class_score: ``float64[K]`` mean class probability over those pixels.
        panoptic: Panoptic segmentation (mask-classification recipes in one-pass mode), or None.
        instances: Scored instance masks (mask-classification recipes in one-pass mode), or None.
        name: Where the image came from (path or ``"image i"``).
    """

    label_map: np.ndarray
    vocabulary: LabelSpace
    scores: torch.Tensor
    image: np.ndarray
    normalisation: str
    class_area: np.ndarray
    class_score: np.ndarray
    panoptic: PanopticPrediction | None = None
    instances: InstancePrediction | None = None
    name: str = "image"
    _segments: list[Segment] | None = field(default=None, repr=False)

    @property
    def labels(self) -> list[str]:
        """The vocabulary's class names, in index order."""
        return self.vocabulary.names

    @property
    def present(self) -> list[str]:
        """Names of the classes in the label map, largest area first."""
        order = np.argsort(-self.class_area, kind="stable")
        return [self.labels[k] for k in order if self.class_area[k] > 0]

    @property
    def segments(self) -> list[Segment]:
        """One segment per class present (semantic), largest first; masks are built on first
        access (``bool[H, W]`` each)."""
        if self._segments is None:
            order = np.argsort(-self.class_area, kind="stable")
            self._segments = [
                Segment(
                    mask=self.label_map == k,
                    label=self.labels[k],
                    label_index=int(k),
                    score=float(self.class_score[k]),
                    id=int(k) + 1,
                )
                for k in order
                if self.class_area[k] > 0
            ]
        return self._segments

    @functools.cached_property
    def panoptic_segments(self) -> list[Segment] | None:
        """The panoptic segments as :class:`Segment` (things one per instance, stuff merged), or
        None when the recipe or mode gives none."""
        if self.panoptic is None:
            return None
        return [
            Segment(
                mask=self.panoptic.segment_ids == s.id,
                label=self.labels[s.category],
                label_index=int(s.category),
                score=float(s.score),
                id=int(s.id),
            )
            for s in self.panoptic.segments
        ]

    @functools.cached_property
    def instance_segments(self) -> list[Segment] | None:
        """The scored instance masks as :class:`Segment`, best first, or None."""
        if self.instances is None:
            return None
        order = np.argsort(-self.instances.scores, kind="stable")
        return [
            Segment(
                mask=self.instances.masks[i],
                label=self.labels[int(self.instances.classes[i])],
                label_index=int(self.instances.classes[i]),
                score=float(self.instances.scores[i]),
                id=rank + 1,
            )
            for rank, i in enumerate(order)
        ]

    # ------------------------------------------------------------------ per-pixel look-ups
    def probabilities_at(self, y: int, x: int) -> np.ndarray:
        """``float32[K]`` class probabilities at pixel ``(y, x)`` (of its stride-4 cell)."""
        height, width = self.label_map.shape
        if not (0 <= y < height and 0 <= x < width):
            raise ValueError(f"Pixel ({y}, {x}) is outside the {height}x{width} image.")
        cell = self.scores[:, y // STRIDE, x // STRIDE]
        return probabilities(cell, self.normalisation).cpu().numpy()

    def top_labels(self, y: int, x: int, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most probable labels at pixel ``(y, x)`` with their probabilities."""
        probs = self.probabilities_at(y, x)
        order = np.argsort(-probs, kind="stable")[:k]
        return [(self.labels[i], float(probs[i])) for i in order]

    def heatmap(self, label: str) -> np.ndarray:
        """``float32[H, W]`` probability of class ``label`` at every pixel (bilinear)."""
        k = self.vocabulary.index(label)
        probs = probabilities(self.scores, self.normalisation)[k]
        up = F.interpolate(probs[None, None], scale_factor=STRIDE, mode="bilinear")[0, 0]
        height, width = self.label_map.shape
        return up[:height, :width].cpu().numpy()

    # ------------------------------------------------------------------ pictures and files
    def overlay(self, *, alpha: float = 0.5, legend: bool = True) -> Image.Image:
        """The image with class colours blended in and a legend of the classes present."""
        return Image.fromarray(
            overlay(
                self.image,
                self.label_map,
                names=self.labels,
                palette=self.vocabulary.palette,
                alpha=alpha,
                ignore_index=-1,
                legend=legend,
            )
        )

    def save(self, path: str | Path, *, kind: str = "overlay", alpha: float = 0.5) -> Path:
        """Write the prediction to ``path`` (parent folders created).

        Args:
            path: Destination image file, e.g. ``street_overlay.png``.
            kind: ``overlay`` (colours and legend over the image) or ``labels`` (a label PNG of
                the vocabulary's on-disk values, as ``babelseg predict`` writes).
            alpha: Overlay opacity.
        Returns:
            The path written.
        """
        dest = Path(path)
        if kind == "labels":
            return write_label_png(dest, indices_to_values(self.label_map, self.vocabulary))
        if kind != "overlay":
            raise ValueError(f"kind must be 'overlay' or 'labels', got '{kind}'.")
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.overlay(alpha=alpha).save(dest)
        return dest

    def plot(self, *, alpha: float = 0.5, ax=None):
        """Show the overlay with matplotlib (in a notebook or a window); returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(10, 6))
        ax.imshow(self.overlay(alpha=alpha))
        ax.set_title(self.name)
        ax.axis("off")
        return ax

    def __repr__(self) -> str:
        height, width = self.label_map.shape
        return f"SegmentationResult({self.name!r}, {height}x{width}, present={self.present})"
