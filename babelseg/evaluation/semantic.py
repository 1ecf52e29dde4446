"""Semantic segmentation metrics: a confusion matrix and the mIoU read from it.

Conventions follow the Cityscapes and mmsegmentation evaluators:

* ground-truth pixels equal to ``ignore_index`` are left out entirely;
* a class whose union (TP + FP + FN) is empty over the whole evaluation set is left out of the
  mean (its per-class IoU is NaN / ``None``), it does not count as 0 or 100;
* a *prediction* equal to ``ignore_index`` (or any value that is not a class index) is never a
  class: it is wrong for its ground-truth pixel (a false negative of that class) and a false
  positive of no class.

Counts accumulate over images, so scoring many images equals scoring one image made of them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from babelseg.labels.space import IGNORE_INDEX


@dataclass
class SemanticMetrics:
    """Scores of one evaluation set. All values are percentages (0-100).

    Attributes:
        miou: Mean IoU over the classes whose union is non-empty; NaN when there is none.
        per_class_iou: ``{class name (or index when no names were given): IoU}``, ``None`` for
            classes left out of the mean (empty union).
        pixel_accuracy: Correct pixels / labelled (non-ignore) ground-truth pixels; NaN when no
            pixel is labelled.
        mean_accuracy: Mean over classes present in the ground truth of TP / (TP + FN); NaN
            when no pixel is labelled.
        iou: ``float64[K]`` per-class IoU in index order, NaN for left-out classes.
        num_images: Number of images accumulated.
        num_pixels: Number of labelled ground-truth pixels accumulated.
    """

    miou: float
    per_class_iou: dict[str | int, float | None]
    pixel_accuracy: float
    mean_accuracy: float
    iou: np.ndarray
    num_images: int
    num_pixels: int


def _to_numpy(x: Any) -> np.ndarray:
    """A numpy array from a numpy array or a torch tensor (any device), without copying numpy."""
    if hasattr(x, "detach"):  # torch.Tensor; avoids importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


class SemanticConfusion:
    """Accumulates a confusion matrix of class indices over many images.

    Args:
        num_classes: K, the number of classes of the label space scored.
        ignore_index: Ground-truth value left out of scoring; as a prediction it counts as wrong.
        names: Optional class names (length K) used as keys of ``per_class_iou``.

    Attributes:
        matrix: ``int64[K, K]``; ``matrix[g, p]`` counts pixels of ground-truth class ``g``
            predicted as class ``p``.
        missed: ``int64[K]``; pixels of ground-truth class ``g`` whose prediction was no class
            (``ignore_index`` or out of range). They are false negatives of ``g``.
        num_images: Images accumulated so far.

    For a distributed all-reduce, sum :meth:`state` (``int64[K, K + 2]``) across processes and
    load the result with :meth:`load_state`, or :meth:`merge` two confusions in one process.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = IGNORE_INDEX,
        *,
        names: Sequence[str] | None = None,
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}.")
        if names is not None and len(names) != num_classes:
            raise ValueError(
                f"Got {len(names)} class names for num_classes={num_classes}; give one per class."
            )
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.names: list[str] | None = None if names is None else [str(n) for n in names]
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.missed = np.zeros(num_classes, dtype=np.int64)
        self.num_images = 0

    # ----------------------------------------------------------------- accumulation
    def update(self, pred: Any, gt: Any) -> None:
        """Add one image (``[H, W]``) or a batch (``[B, H, W]``).

        Args:
            pred: ``int[H, W]`` or ``int[B, H, W]`` predicted class indices (numpy or torch).
            gt: Ground-truth class indices of the same shape, ``ignore_index`` where unlabelled.

        Raises:
            ValueError: shapes differ, not 2-D/3-D, or the ground truth holds a value that is
                neither a class index nor ``ignore_index``.
        """
        p = _to_numpy(pred)
        g = _to_numpy(gt)
        if p.shape != g.shape:
            raise ValueError(
                f"Prediction shape {p.shape} differs from ground-truth shape {g.shape}; "
                "resize the prediction to the ground-truth size before scoring."
            )
        if g.ndim not in (2, 3):
            raise ValueError(f"Expected [H, W] or [B, H, W] label maps, got shape {g.shape}.")
        k = self.num_classes
        batch = 1 if g.ndim == 2 else int(g.shape[0])
        g = g.astype(np.int64, copy=False).ravel()
        p = p.astype(np.int64, copy=False).ravel()
        keep = g != self.ignore_index
        g = g[keep]
        p = p[keep]
        if g.size and (g.min() < 0 or g.max() >= k):
            bad = np.unique(g[(g < 0) | (g >= k)])[:10].tolist()
            raise ValueError(
                f"Ground truth holds values {bad} that are neither class indices 0..{k - 1} nor "
                f"the ignore index {self.ignore_index}; encode labels with LabelSpace.encode."
            )
        # Predictions that are no class (ignore or out of range) go to an extra column K.
        p = np.where((p >= 0) & (p < k), p, k)
        counts = np.bincount(g * (k + 1) + p, minlength=k * (k + 1)).reshape(k, k + 1)
        self.matrix += counts[:, :k]
        self.missed += counts[:, k]
        self.num_images += batch

    def merge(self, other: SemanticConfusion) -> SemanticConfusion:
        """Add the counts of ``other`` (same number of classes) into this one; returns self."""
        if other.num_classes != self.num_classes:
            raise ValueError(
                f"Cannot merge confusions of {other.num_classes} and {self.num_classes} classes."
            )
        self.matrix += other.matrix
        self.missed += other.missed
        self.num_images += other.num_images
        return self

    def state(self) -> np.ndarray:
        """``int64[K, K + 2]``: matrix, then the missed column, then ``num_images`` in row 0.

        Summing the states of several processes (e.g. ``torch.distributed.all_reduce``) and
        loading the sum with :meth:`load_state` equals merging the confusions.
        """
        out = np.zeros((self.num_classes, self.num_classes + 2), dtype=np.int64)
        out[:, : self.num_classes] = self.matrix
        out[:, self.num_classes] = self.missed
        out[0, self.num_classes + 1] = self.num_images
        return out

    def load_state(self, state: Any) -> None:
        """Replace the counts with a (summed) :meth:`state` array (numpy or torch)."""
        s = _to_numpy(state).astype(np.int64)
        k = self.num_classes
        assert s.shape == (k, k + 2), f"state shape {s.shape} != {(k, k + 2)}"
        self.matrix = s[:, :k].copy()
        self.missed = s[:, k].copy()
        self.num_images = int(s[0, k + 1])

    def reset(self) -> None:
        """Forget everything accumulated."""
        self.matrix[:] = 0
        self.missed[:] = 0
        self.num_images = 0

    # ----------------------------------------------------------------- scores
    def compute(self) -> SemanticMetrics:
        """Scores of everything accumulated so far (see the module docstring for conventions)."""
        tp = np.diag(self.matrix).astype(np.float64)
        gt_total = self.matrix.sum(axis=1) + self.missed  # TP + FN
        pred_total = self.matrix.sum(axis=0)  # TP + FP
        union = gt_total + pred_total - tp
        valid = union > 0
        iou = np.full(self.num_classes, np.nan)
        iou[valid] = 100.0 * tp[valid] / union[valid]
        present = gt_total > 0
        acc = np.full(self.num_classes, np.nan)
        acc[present] = 100.0 * tp[present] / gt_total[present]
        labelled = int(gt_total.sum())
        keys: list[str | int] = (
            list(self.names) if self.names is not None else list(range(self.num_classes))
        )
        return SemanticMetrics(
            miou=float(iou[valid].mean()) if valid.any() else float("nan"),
            per_class_iou={key: (float(v) if ok else None) for key, v, ok in zip(keys, iou, valid)},
            pixel_accuracy=100.0 * float(tp.sum()) / labelled if labelled else float("nan"),
            mean_accuracy=float(acc[present].mean()) if present.any() else float("nan"),
            iou=iou,
            num_images=self.num_images,
            num_pixels=labelled,
        )
