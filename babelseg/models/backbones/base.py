"""The backbone interface: an image batch in, a multi-scale feature pyramid out.

Every backbone receives images normalised with ``IMAGENET_MEAN`` / ``IMAGENET_STD`` (training,
``predict``, ``serve`` and ``export`` all feed that). A backbone pretrained with other constants
(CLIP) converts its input itself, so no caller needs to know which backbone it feeds.
"""

from __future__ import annotations

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""RGB mean of ImageNet, on the 0..1 scale: the input normalisation of every backbone."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""RGB standard deviation of ImageNet, on the 0..1 scale."""


class Backbone(nn.Module):
    """Base class of every backbone.

    Subclasses set ``out_channels`` and ``strides`` (one entry per pyramid level, finest first,
    strides typically ``[4, 8, 16, 32]``) and implement :meth:`forward`.
    """

    out_channels: list[int]
    strides: list[int]

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Compute the pyramid.

        Args:
            images: ``float[B, 3, H, W]`` images normalised with ``IMAGENET_MEAN`` /
                ``IMAGENET_STD``.
        Returns:
            One ``float[B, C_l, H / s_l, W / s_l]`` tensor per level ``l``.
        """
        raise NotImplementedError
