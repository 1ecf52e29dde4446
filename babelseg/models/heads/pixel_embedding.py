"""Pixel-embedding head: decoder features in, per-pixel vectors in the text-embedding space out."""

from __future__ import annotations

import torch
from torch import nn

from babelseg.models.backbones.tiny import conv_norm_act


class PixelEmbeddingHead(nn.Module):
    """``3x3 conv-norm-ReLU`` then a ``1x1`` projection to the text-embedding dimension.

    The output is not normalised; losses and classifiers normalise it when they need cosine
    similarities against the (L2-normalised) text embeddings.

    Args:
        in_dim: Channels of the decoder features.
        embed_dim: Dimension D of the text embeddings (384 for MiniLM).
        hidden_dim: Channels of the 3x3 conv (default ``in_dim``).
        norm: ``"gn"`` (default), ``"bn"`` or ``"none"``.
    """

    def __init__(
        self, *, in_dim: int, embed_dim: int, hidden_dim: int | None = None, norm: str = "gn"
    ) -> None:
        super().__init__()
        if in_dim < 1 or embed_dim < 1:
            raise ValueError(f"in_dim and embed_dim must be >= 1, got {in_dim}, {embed_dim}")
        hidden_dim = in_dim if hidden_dim is None else hidden_dim
        self.embed_dim = embed_dim
        self.conv = conv_norm_act(in_dim, hidden_dim, norm=norm)
        self.proj = nn.Conv2d(hidden_dim, embed_dim, 1)
        nn.init.kaiming_uniform_(self.conv[0].weight, a=1)
        nn.init.normal_(self.proj.weight, std=hidden_dim**-0.5)
        nn.init.zeros_(self.proj.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Args: features: ``float[B, in_dim, h, w]``.

        Returns: ``float[B, embed_dim, h, w]`` pixel embeddings.
        """
        return self.proj(self.conv(features))
