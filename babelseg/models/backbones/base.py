"""The backbone interface: an image batch in, a multi-scale feature pyramid out."""

from __future__ import annotations

import torch
from torch import nn


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
            images: ``float[B, 3, H, W]`` normalised images.
        Returns:
            One ``float[B, C_l, H / s_l, W / s_l]`` tensor per level ``l``.
        """
        raise NotImplementedError
