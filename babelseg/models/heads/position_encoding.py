"""Positional encodings of feature maps for attention layers."""

from __future__ import annotations

import math

import torch


def sine_position_encoding(
    height: int, width: int, dim: int, *, device: torch.device, temperature: float = 10000.0
) -> torch.Tensor:
    """DETR / Mask2Former's normalised 2-D sine positional encoding.

    Args:
        height: h of the feature map.
        width: w of the feature map.
        dim: Channels (a multiple of 4): the first half encodes y, the second half x.
        device: Where to build it.
        temperature: Frequency base.
    Returns:
        ``float32[h * w, dim]``, row-major like ``x.flatten(2)``.
    """
    feats = dim // 2
    scale = 2 * math.pi
    y = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height * scale
    x = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width * scale
    index = torch.arange(feats, device=device, dtype=torch.float32)
    dim_t = temperature ** (2 * torch.div(index, 2, rounding_mode="floor") / feats)

    def encode(v: torch.Tensor) -> torch.Tensor:
        p = v[:, None] / dim_t  # [n, feats]
        return torch.stack([p[:, 0::2].sin(), p[:, 1::2].cos()], dim=2).flatten(1)

    pos_y = encode(y)[:, None, :].expand(height, width, feats)
    pos_x = encode(x)[None, :, :].expand(height, width, feats)
    return torch.cat([pos_y, pos_x], dim=-1).reshape(height * width, dim)
