"""A per-pixel projection head: ``3x3 conv-norm-ReLU, (1x1 conv-norm-ReLU) x (layers - 2), 1x1
conv``.

MS3.txt section 4.1 puts two 3-layer projection heads after the pixel decoder, one embedding map
for the language pairing and one for the visual pairing (512-d each in the paper).
"""

from __future__ import annotations

import torch
from torch import nn

from babelseg.models.backbones.tiny import conv_norm_act


class ProjectionHead(nn.Module):
    """Decoder features in, per-pixel embeddings out (not normalised).

    Args:
        in_dim: Channels of the decoder features.
        hidden_dim: Channels of the hidden layers.
        embed_dim: Output channels (the embedding dimension).
        layers: Number of layers (>= 1; the paper's heads have 3; the first is 3x3 when > 1).
        norm: ``"gn"`` (default), ``"bn"`` or ``"none"`` after each hidden layer.
    """

    def __init__(
        self, *, in_dim: int, hidden_dim: int, embed_dim: int, layers: int = 3, norm: str = "gn"
    ) -> None:
        super().__init__()
        if min(in_dim, hidden_dim, embed_dim, layers) < 1:
            raise ValueError(
                f"ProjectionHead needs in_dim, hidden_dim, embed_dim and layers >= 1, got "
                f"{in_dim}, {hidden_dim}, {embed_dim}, {layers} (recipe.ms3.head_width / "
                "head_layers / visual_dim)."
            )
        self.embed_dim = embed_dim
        dims = [in_dim] + [hidden_dim] * (layers - 1)
        # the first layer is 3x3: the decoder's stride-4 features get no 3x3 conv of their own
        hidden = [
            conv_norm_act(a, b, kernel_size=3 if i == 0 else 1, norm=norm)
            for i, (a, b) in enumerate(zip(dims, dims[1:]))
        ]
        self.hidden = nn.Sequential(*hidden)
        self.proj = nn.Conv2d(dims[-1], embed_dim, 1)
        nn.init.normal_(self.proj.weight, std=dims[-1] ** -0.5)
        nn.init.zeros_(self.proj.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``float[B, in_dim, h, w]`` -> ``float[B, embed_dim, h, w]``."""
        return self.proj(self.hidden(features))
