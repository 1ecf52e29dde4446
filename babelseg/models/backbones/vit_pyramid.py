"""ViTDet's simple feature pyramid: one plain-ViT map at the patch stride to strides 4, 8, 16, 32.

Shared by the transformers ``AutoBackbone`` adapter (DINOv2 and other plain ViTs) and the CLIP
image encoder. Pure torch: no transformers import here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

PYRAMID_STRIDES = [4, 8, 16, 32]
VIT_STRIDE = 16  # stride of the map the simple feature pyramid is built from


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a ``float[B, C, H, W]`` map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: ``float[B, C, H, W]``. Returns: ``float[B, C, H, W]``."""
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SimpleFeaturePyramid(nn.Module):
    """ViTDet's scale operators: one stride-16 map (or four) to strides 4, 8, 16, 32.

    Channels: ``[C/4, C/2, C, C]`` (the FPN decoder projects them anyway).

    Args:
        channels: Channels C of the ViT map.
    """

    def __init__(self, *, channels: int) -> None:
        super().__init__()
        half, quarter = max(channels // 2, 1), max(channels // 4, 1)
        self.scales = nn.ModuleList(
            [
                nn.Sequential(
                    nn.ConvTranspose2d(channels, half, 2, stride=2),
                    LayerNorm2d(half),
                    nn.GELU(),
                    nn.ConvTranspose2d(half, quarter, 2, stride=2),
                ),
                nn.ConvTranspose2d(channels, half, 2, stride=2),
                nn.Identity(),
                nn.MaxPool2d(2, stride=2, ceil_mode=True),
            ]
        )
        self.out_channels = [quarter, half, channels, channels]

    def forward(self, maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Args: maps: one ``float[B, C, H/16, W/16]`` map, or four (one per level).

        Returns: four maps at strides 4, 8, 16, 32.
        """
        if len(maps) == 1:
            maps = list(maps) * 4
        return [scale(m) for scale, m in zip(self.scales, maps)]


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-value // multiple) * multiple


def vit_padded_size(height: int, width: int, *, patch_size: int) -> tuple[int, int]:
    """Size a ViT input is zero-padded to: a multiple of 32 (the coarsest pyramid stride), then of
    the patch size (the patch embedding drops a partial last patch)."""
    return (
        round_up(round_up(height, 32), patch_size),
        round_up(round_up(width, 32), patch_size),
    )


def to_stride16(
    feature_map: torch.Tensor, *, patch_size: int, grid: tuple[int, int]
) -> torch.Tensor:
    """Resample a patch-stride map onto the stride-16 grid with pixel centres aligned.

    Args:
        feature_map: ``float[B, C, H/p, W/p]`` (H, W the padded input size).
        patch_size: p.
        grid: ``(H/16, W/16)``.
    Returns:
        ``float[B, C, H/16, W/16]``.
    """
    scale = patch_size / VIT_STRIDE
    resized = F.interpolate(
        feature_map,
        scale_factor=scale,
        mode="bilinear",
        align_corners=False,
        antialias=scale < 0.5,  # at 1/2 a 2-tap average is exact; 14/16 needs none
        recompute_scale_factor=False,
    )
    assert resized.shape[-2] >= grid[0] and resized.shape[-1] >= grid[1], "grid too small"
    return resized[..., : grid[0], : grid[1]]
