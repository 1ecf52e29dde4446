"""Per-dataset bookkeeping of a mixed mask batch: which rows belong to which dataset, and the
target counts that normalise each dataset's losses (used by ``mask_common.MaskRecipe.loss``)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from babelseg.data.targets import MaskTargetBatch


def target_counts(targets: MaskTargetBatch, idx: list[int]) -> dict[str, float]:
    """``num_images``, ``num_masks``, ``num_boxes`` of the images ``idx`` (host ints)."""
    masks = sum(targets.num_targets[b] for b in idx if not targets.box_only[b])
    boxes = sum(targets.num_targets[b] for b in idx if targets.box_only[b])
    return {"num_images": float(len(idx)), "num_masks": float(masks), "num_boxes": float(boxes)}


def dataset_rows(
    by_dataset: Mapping[str, list[int]], device: torch.device
) -> list[torch.Tensor | None]:
    """Each dataset's image rows as ``int64`` tensors on ``device`` (one copy for all), or None
    for a batch of one dataset."""
    if len(by_dataset) == 1:
        return [None]
    flat = torch.as_tensor([b for idx in by_dataset.values() for b in idx], dtype=torch.int64)
    flat = flat.pin_memory() if device.type == "cuda" else flat
    return list(flat.to(device, non_blocking=True).split([len(i) for i in by_dataset.values()]))
