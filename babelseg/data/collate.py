"""Collation of augmented Samples into a padded, normalised batch.

The input normalisation is ``IMAGENET_MEAN`` / ``IMAGENET_STD``, defined with the backbone contract
(``babelseg.models.backbones.base``) and re-exported here; the inference code normalises with
``normalize_image`` too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from babelseg.data.sample import Sample
from babelseg.data.targets import MaskTargetBatch, TargetSpec, build_mask_targets
from babelseg.labels.space import IGNORE_INDEX
from babelseg.models.backbones.base import IMAGENET_MEAN, IMAGENET_STD


def normalize_image(image: np.ndarray) -> torch.Tensor:
    """Convert an RGB image to the network's input.

    Args:
        image: ``uint8[H, W, 3]`` RGB.
    Returns:
        ``float32[3, H, W]``: ``(image / 255 - IMAGENET_MEAN) / IMAGENET_STD``.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"Expected an RGB image of shape [H, W, 3], got {tuple(image.shape)}.")
    # np.require copies only read-only (e.g. PIL-backed) or non-contiguous arrays
    x = torch.from_numpy(np.require(image, requirements=["C", "W"]))
    x = x.permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)
    return (x - mean) / std


@dataclass
class Batch:
    """A padded batch.

    Attributes:
        images: ``float32[B, 3, H, W]`` normalised images, 0 on padding (``H, W``: the largest
            image of the batch; each image sits at the top-left).
        semantic: ``int64[B, H, W]`` class indices, ``IGNORE_INDEX`` on padding and for samples
            without a semantic map; None when no sample has one, or when targets are not at image
            resolution (evaluation with a resized image: use ``samples[i].semantic``).
        valid: ``bool[B, H, W]``: True on real image pixels, False on padding (collation
            padding and augmentation padding alike).
        datasets: Dataset name of each sample.
        samples: The augmented samples (masks, boxes, classes for instance/box targets).
        image_sizes: ``(h, w)`` of each image before collation padding.
        targets: The recipe's training targets as padded tensors (built in the workers when
            ``collate_samples`` gets a :class:`~babelseg.data.targets.TargetSpec`), or None.
    """

    images: torch.Tensor
    semantic: torch.Tensor | None
    valid: torch.Tensor
    datasets: list[str]
    samples: list[Sample]
    image_sizes: list[tuple[int, int]]
    targets: MaskTargetBatch | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The tensors moved to ``device`` (samples stay numpy); from pinned memory with
        ``non_blocking=True`` the copies overlap with the host's work."""
        return Batch(
            images=self.images.to(device, non_blocking=non_blocking),
            semantic=None
            if self.semantic is None
            else self.semantic.to(device, non_blocking=non_blocking),
            valid=self.valid.to(device, non_blocking=non_blocking),
            datasets=self.datasets,
            samples=self.samples,
            image_sizes=self.image_sizes,
            targets=None if self.targets is None else self.targets.to(device, non_blocking),
        )

    def pin_memory(self) -> Batch:
        """Pinned copies of the tensors (called by ``DataLoader(pin_memory=True)``)."""
        return Batch(
            images=self.images.pin_memory(),
            semantic=None if self.semantic is None else self.semantic.pin_memory(),
            valid=self.valid.pin_memory(),
            datasets=self.datasets,
            samples=self.samples,
            image_sizes=self.image_sizes,
            targets=None if self.targets is None else self.targets.pin_memory(),
        )


def collate_samples(samples: Sequence[Sample], *, targets: TargetSpec | None = None) -> Batch:
    """Stack samples of possibly different sizes into a Batch (padding at bottom and right).

    Args:
        samples: Augmented samples; ``extras["valid"]`` (``bool[h, w]``), when present, marks
            augmentation padding.
        targets: What training targets to build (a recipe's ``target_spec``); None: none. The
            trainer passes it through ``functools.partial`` so that the DataLoader workers build
            them.
    Returns:
        The Batch (see its attributes for shapes and padding values).
    """
    if not samples:
        raise ValueError("collate_samples needs at least one sample.")
    sizes = [(s.height, s.width) for s in samples]
    height = max(h for h, _ in sizes)
    width = max(w for _, w in sizes)
    b = len(samples)
    images = torch.zeros((b, 3, height, width), dtype=torch.float32)
    valid = torch.zeros((b, height, width), dtype=torch.bool)
    with_semantic = [s for s in samples if s.semantic is not None]
    aligned = all(s.semantic.shape == (s.height, s.width) for s in with_semantic)  # type: ignore[union-attr]
    semantic = None
    if with_semantic and aligned:
        semantic = torch.full((b, height, width), IGNORE_INDEX, dtype=torch.int64)
    for i, (s, (h, w)) in enumerate(zip(samples, sizes)):
        images[i, :, :h, :w] = normalize_image(s.image)
        v = s.extras.get("valid")
        valid[i, :h, :w] = True if v is None else torch.from_numpy(np.asarray(v, dtype=bool))
        if semantic is not None and s.semantic is not None:
            semantic[i, :h, :w] = torch.from_numpy(np.asarray(s.semantic, dtype=np.int64))
    if semantic is not None:
        semantic[~valid] = IGNORE_INDEX
    return Batch(
        images=images,
        semantic=semantic,
        valid=valid,
        datasets=[s.dataset for s in samples],
        samples=list(samples),
        image_sizes=sizes,
        targets=None
        if targets is None
        else build_mask_targets(samples, semantic, (height, width), targets),
    )
