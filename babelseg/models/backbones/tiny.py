"""A small residual ConvNet: the default backbone for CPU training on SynthWorld.

Stem of two stride-2 3x3 convs (stride 4), then four stages of plain 3x3 residual blocks
(ResNet ``BasicBlock``), each stage after the first opened by a stride-2 3x3 conv. With the
default widths (32, 64, 128, 192) it has about 1.5 M parameters and about 0.1 GMAC per 128x128
image.

Normalisation: BatchNorm by default. It is the fastest choice on CPU and fine at the batch sizes we
train with (>= 8 images per process). Under DistributedDataParallel on GPUs convert it with
``torch.nn.SyncBatchNorm.convert_sync_batchnorm``; with fewer than ~4 images per process (or DDP
on CPU, where SyncBatchNorm is not supported) pass ``norm="gn"`` (GroupNorm, batch independent).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from babelseg.models.backbones.base import Backbone

NORMS = ("bn", "gn", "none")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """Build a 2-D normalisation layer.

    Args:
        kind: ``"bn"`` (BatchNorm2d), ``"gn"`` (GroupNorm with up to 32 groups) or ``"none"``.
        channels: Number of channels C of the ``float[B, C, H, W]`` input.
    Returns:
        The layer (``nn.Identity`` for ``"none"``).
    """
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "gn":
        return nn.GroupNorm(math.gcd(32, channels), channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"Unknown norm {kind!r}; valid norms: {', '.join(NORMS)}")


def conv_norm_act(
    in_channels: int, out_channels: int, *, kernel_size: int = 3, stride: int = 1, norm: str = "bn"
) -> nn.Sequential:
    """``Conv2d -> norm -> ReLU`` with 'same' padding (bias only when there is no norm)."""
    return nn.Sequential(
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            bias=norm == "none",
        ),
        norm_layer(norm, out_channels),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """Two 3x3 convs with an identity shortcut: ``relu(x + norm(conv(relu(norm(conv(x))))))``.

    The last norm's scale starts at zero so every block starts as the identity (faster, stabler
    training from scratch).
    """

    def __init__(self, *, channels: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=norm == "none")
        self.norm1 = norm_layer(norm, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=norm == "none")
        self.norm2 = norm_layer(norm, channels)
        self.act = nn.ReLU(inplace=True)
        if isinstance(self.norm2, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.zeros_(self.norm2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: ``float[B, C, H, W]``. Returns: ``float[B, C, H, W]``."""
        y = self.act(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return self.act(x + y)


class TinyConvBackbone(Backbone):
    """Small residual ConvNet with a four-level pyramid at strides 4, 8, 16, 32.

    Args:
        widths: Channels of the four stages (finest first).
        depths: Residual blocks per stage.
        norm: ``"bn"`` (default), ``"gn"`` or ``"none"``; see the module docstring.
    """

    def __init__(
        self,
        *,
        widths: Sequence[int] = (32, 64, 128, 192),
        depths: Sequence[int] = (1, 1, 2, 1),
        norm: str = "bn",
    ) -> None:
        super().__init__()
        widths, depths = [int(w) for w in widths], [int(d) for d in depths]
        if len(widths) != 4 or len(depths) != 4:
            raise ValueError(
                f"TinyConvBackbone needs 4 widths and 4 depths, got widths={widths}, "
                f"depths={depths}"
            )
        if min(widths) < 1 or min(depths) < 0:
            raise ValueError(f"widths must be >= 1 and depths >= 0, got {widths}, {depths}")
        if norm not in NORMS:
            raise ValueError(f"Unknown norm {norm!r}; valid norms: {', '.join(NORMS)}")
        stem_width = max(widths[0] // 2, 8)
        self.stem = nn.Sequential(
            conv_norm_act(3, stem_width, stride=2, norm=norm),
            conv_norm_act(stem_width, widths[0], stride=2, norm=norm),
        )
        self.stages = nn.ModuleList()
        for i, (width, depth) in enumerate(zip(widths, depths)):
            layers: list[nn.Module] = []
            if i > 0:
                layers.append(conv_norm_act(widths[i - 1], width, stride=2, norm=norm))
            layers += [ResidualBlock(channels=width, norm=norm) for _ in range(depth)]
            self.stages.append(nn.Sequential(*layers))
        self.out_channels = widths
        self.strides = [4, 8, 16, 32]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Compute the pyramid.

        Args:
            images: ``float[B, 3, H, W]`` normalised images (H, W multiples of 32 give exact
                strides).
        Returns:
            Four tensors ``float[B, widths[l], H / s_l, W / s_l]`` for s = 4, 8, 16, 32.
        """
        x = self.stem(images)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features
