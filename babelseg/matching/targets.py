"""The ground truth of one image as the mask-classification matcher and losses see it, and its
conversion to the padded batch form (:class:`~babelseg.data.targets.MaskTargetBatch`) that
collation builds in the data workers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from babelseg.data.sample import Task
from babelseg.data.targets import MaskTargetBatch


@dataclass
class MaskTargets:
    """Targets of one image, in that image's own label space.

    Masks cover the same image extent as the predicted mask logits (any resolution: losses and
    costs sample both at the same relative points); boxes are on the grid of the mask logits.

    Attributes:
        classes: ``int64[T]`` class index (into the image's label space) of each target.
        masks: ``bool[T, H, W]`` (or float in ``[0, 1]``) target masks; None for boxes only.
        boxes: ``float[T, 4]`` ``(x0, y0, x1, y1)`` on the mask-logit grid; needed when
            ``box_only``.
        box_only: The targets are boxes without masks (DaTaSeg weak supervision: projection cost
            and loss instead of the mask ones).
    """

    classes: torch.Tensor
    masks: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    box_only: bool = False

    def __post_init__(self) -> None:
        n = int(self.classes.shape[0])
        if self.box_only:
            if self.boxes is None or self.boxes.shape != (n, 4):
                shape = None if self.boxes is None else tuple(self.boxes.shape)
                raise ValueError(
                    f"box_only targets need boxes of shape ({n}, 4), got {shape}; pass the "
                    "boxes scaled to the mask-logit grid"
                )
        elif self.masks is None or self.masks.shape[0] != n:
            shape = None if self.masks is None else tuple(self.masks.shape)
            raise ValueError(
                f"mask targets need masks of shape ({n}, H, W), got {shape}; set box_only=True "
                "for boxes-only data"
            )

    def __len__(self) -> int:
        return int(self.classes.shape[0])


def stack_targets(targets: Sequence[MaskTargets]) -> MaskTargetBatch:
    """Per-image :class:`MaskTargets` as one padded :class:`MaskTargetBatch` (on the device of
    the first image's classes).

    Raises:
        ValueError: Mask targets of different resolutions (pad them to one extent first).
    """
    shapes = {tuple(t.masks.shape[1:]) for t in targets if not t.box_only}
    if len(shapes) > 1:
        raise ValueError(
            f"Mask targets of different resolutions {sorted(shapes)}: every image's masks must "
            "cover the batch's padded extent at one resolution"
        )
    grid = shapes.pop() if shapes else (1, 1)
    device = targets[0].classes.device if targets else torch.device("cpu")
    b, t = len(targets), max((len(x) for x in targets), default=0)
    classes = torch.zeros((b, t), dtype=torch.int64, device=device)
    valid = torch.zeros((b, t), dtype=torch.bool, device=device)
    boxes = torch.zeros((b, t, 4), dtype=torch.float32, device=device)
    float_masks = any(not x.box_only and x.masks.dtype != torch.bool for x in targets)
    masks = torch.zeros(
        (b, t, *grid), dtype=torch.float32 if float_masks else torch.bool, device=device
    )
    for i, x in enumerate(targets):
        n = len(x)
        classes[i, :n], valid[i, :n] = x.classes.to(device), True
        if x.box_only:
            boxes[i, :n] = x.boxes.to(device=device, dtype=torch.float32)
        else:
            masks[i, :n] = x.masks.to(device=device, dtype=masks.dtype)
    num_targets = [len(x) for x in targets]
    box_only = [x.box_only for x in targets]
    return MaskTargetBatch(
        classes=classes,
        valid=valid,
        masks=masks,
        boxes=boxes,
        box_only=box_only,
        tasks=[Task.PANOPTIC] * b,  # per-image MaskTargets carry no task
        num_targets=num_targets,
        max_class=[int(x.classes.max()) if len(x) else -1 for x in targets],
        counts={
            "num_images": float(b),
            "num_masks": float(sum(n for n, o in zip(num_targets, box_only) if not o)),
            "num_boxes": float(sum(n for n, o in zip(num_targets, box_only) if o)),
        },
    )
