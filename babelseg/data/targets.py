"""Training targets of the mask-classification recipes, built once per batch in the data workers.

A recipe says what it needs with a :class:`TargetSpec`; :func:`build_mask_targets` (called by
``collate_samples`` in the DataLoader workers) turns the augmented samples of a batch into one
:class:`MaskTargetBatch` of padded tensors, which moves to the device with the rest of the batch
(pinned memory, ``non_blocking``). Per image:

- semantic data (or panoptic / instance data without masks): one mask per class present in the
  padded semantic map;
- panoptic / instance data: the non-crowd, non-empty instance masks with their classes;
- boxes-only data: the non-crowd boxes of at least 1 px after clipping, scaled to the mask-logit
  grid, marked ``box_only``.

Masks cover the padded image extent rounded up to a multiple of ``TargetSpec.pad_multiple`` (the
mask logits' extent), at ``1 / mask_stride`` of its resolution. The host-side counts (targets per
image, normalisers, largest class) come with the tensors so that nothing in the training step has
to read them back from the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from babelseg.data.sample import Annotation, Sample, Task
from babelseg.labels.space import IGNORE_INDEX


@dataclass(frozen=True)
class TargetSpec:
    """What targets a recipe needs from collation.

    Attributes:
        pad_multiple: Masks cover the padded batch extent rounded up to this multiple (the
            stride of the mask logits, so both cover the same image area).
        mask_stride: Masks are stored at ``1 / mask_stride`` of the image resolution (1: every
            pixel, bool; > 1: the area share of each cell, float32 in ``[0, 1]``).
        box_stride: Boxes are divided by this (the stride of the mask-logit grid).
    """

    pad_multiple: int = 4
    mask_stride: int = 1
    box_stride: int = 4

    def __post_init__(self) -> None:
        for name in ("pad_multiple", "mask_stride", "box_stride"):
            if getattr(self, name) < 1:
                raise ValueError(f"TargetSpec.{name} must be >= 1, got {getattr(self, name)}.")
        if self.pad_multiple % self.mask_stride:
            raise ValueError(
                f"TargetSpec.mask_stride {self.mask_stride} must divide pad_multiple "
                f"{self.pad_multiple}, so that the masks tile the padded extent exactly."
            )


@dataclass
class MaskTargetBatch:
    """The padded targets of a batch of B images with at most T targets each.

    Attributes:
        classes: ``int64[B, T]`` class of each target in its image's label space (0 on padding).
        valid: ``bool[B, T]``: True for real targets.
        masks: ``bool[B, T, h, w]`` (float32 when ``mask_stride > 1``), False on padding and for
            box-only images.
        boxes: ``float32[B, T, 4]`` ``(x0, y0, x1, y1)`` on the mask-logit grid (0 where none).
        box_only: Per image: its targets are boxes without masks (host list).
        tasks: Per image: the task of its dataset (host list).
        num_targets: Per image: T_b (host list).
        max_class: Per image: the largest target class, -1 without targets (host list; the
            matcher checks it against the label space without reading the device).
        counts: ``{num_images, num_masks, num_boxes}`` of this batch (host floats).
    """

    classes: torch.Tensor
    valid: torch.Tensor
    masks: torch.Tensor
    boxes: torch.Tensor
    box_only: list[bool]
    tasks: list[Task]
    num_targets: list[int]
    max_class: list[int]
    counts: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.box_only)

    def _map(self, fn) -> MaskTargetBatch:
        return MaskTargetBatch(
            classes=fn(self.classes),
            valid=fn(self.valid),
            masks=fn(self.masks),
            boxes=fn(self.boxes),
            box_only=self.box_only,
            tasks=self.tasks,
            num_targets=self.num_targets,
            max_class=self.max_class,
            counts=self.counts,
        )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> MaskTargetBatch:
        """The tensors moved to ``device`` (host lists stay)."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> MaskTargetBatch:
        """Pinned copies of the tensors."""
        return self._map(lambda t: t.pin_memory())


def _box_targets(sample: Sample, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-crowd boxes of at least 1 px after clipping to ``size`` (image pixels), and their
    classes: ``(float[T, 4], int64[T])``."""
    if sample.boxes is None or sample.classes is None or len(sample.boxes) == 0:
        return torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)
    boxes = torch.as_tensor(np.asarray(sample.boxes), dtype=torch.float32).reshape(-1, 4)
    classes = torch.as_tensor(np.asarray(sample.classes), dtype=torch.long)
    keep = torch.ones(len(boxes), dtype=torch.bool)
    if sample.iscrowd is not None:
        keep &= ~torch.as_tensor(np.asarray(sample.iscrowd), dtype=torch.bool)
    h, w = size
    clipped = torch.minimum(boxes.clamp(min=0.0), torch.tensor([w, h, w, h], dtype=torch.float32))
    keep &= ((clipped[:, 2] - clipped[:, 0]) >= 1.0) & ((clipped[:, 3] - clipped[:, 1]) >= 1.0)
    return clipped[keep], classes[keep]


def _mask_targets(
    sample: Sample, semantic: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(bool[T, h, w], int64[T])`` masks (unpadded) and classes of a mask-annotated image."""
    if sample.task == Task.SEMANTIC or sample.masks is None:
        if semantic is None:
            raise ValueError(
                f"{sample.path or sample.dataset}: a {sample.task.value} sample without masks "
                "needs a semantic map of the image's size."
            )
        present = torch.unique(semantic)
        classes = present[present != IGNORE_INDEX]
        return semantic[None] == classes[:, None, None], classes
    masks = torch.from_numpy(np.asarray(sample.masks, dtype=bool))
    classes = torch.as_tensor(np.asarray(sample.classes), dtype=torch.long)
    keep = masks.flatten(1).any(1)
    if sample.iscrowd is not None:
        keep &= ~torch.as_tensor(np.asarray(sample.iscrowd), dtype=torch.bool)
    return masks[keep], classes[keep]


def build_mask_targets(
    samples: Sequence[Sample],
    semantic: torch.Tensor | None,
    size: tuple[int, int],
    spec: TargetSpec,
) -> MaskTargetBatch:
    """The targets of a collated batch (see the module docstring).

    Args:
        samples: The B augmented samples.
        semantic: ``int64[B, H, W]`` padded semantic maps (255 = ignore), or None.
        size: ``(H, W)`` of the padded batch.
        spec: What the recipe needs.
    Returns:
        The padded :class:`MaskTargetBatch` (on the CPU).
    """
    h, w = size
    m = spec.pad_multiple
    grid = (-(-h // m) * m, -(-w // m) * m)
    per_image: list[tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]] = []
    for i, sample in enumerate(samples):
        if sample.annotation == Annotation.BOXES:
            boxes, classes = _box_targets(sample, size)
            per_image.append((None, boxes / spec.box_stride, classes))
        else:
            masks, classes = _mask_targets(sample, None if semantic is None else semantic[i])
            per_image.append((masks, None, classes))
    b, t = len(samples), max((len(c) for *_, c in per_image), default=0)
    stride = spec.mask_stride
    classes = torch.zeros((b, t), dtype=torch.int64)
    valid = torch.zeros((b, t), dtype=torch.bool)
    boxes = torch.zeros((b, t, 4), dtype=torch.float32)
    full = torch.zeros((b, t, *grid), dtype=torch.bool)
    for i, (masks, box, cls) in enumerate(per_image):
        n = len(cls)
        classes[i, :n], valid[i, :n] = cls, True
        if box is not None:
            boxes[i, :n] = box
        elif n:
            full[i, :n, : masks.shape[1], : masks.shape[2]] = masks
    masks_out = full
    if stride > 1:  # area share of each stride x stride cell
        masks_out = F.avg_pool2d(full.flatten(0, 1)[:, None].float(), stride)[:, 0]
        masks_out = masks_out.reshape(b, t, grid[0] // stride, grid[1] // stride)
    box_only = [s.annotation == Annotation.BOXES for s in samples]
    num_targets = [len(c) for *_, c in per_image]
    return MaskTargetBatch(
        classes=classes,
        valid=valid,
        masks=masks_out,
        boxes=boxes,
        box_only=box_only,
        tasks=[s.task for s in samples],
        num_targets=num_targets,
        max_class=[int(c.max()) if len(c) else -1 for *_, c in per_image],
        counts={
            "num_images": float(b),
            "num_masks": float(sum(n for n, bo in zip(num_targets, box_only) if not bo)),
            "num_boxes": float(sum(n for n, bo in zip(num_targets, box_only) if bo)),
        },
    )
