"""The ground truth of one image as the mask-classification matcher and losses see it."""

from __future__ import annotations

from dataclasses import dataclass

import torch


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
