"""ResNet backbones with the torchvision/timm state-dict layout (no torchvision needed).

Parameter names follow torchvision's and timm's ``ResNet``: ``conv1, bn1, layer1..layer4`` with
blocks ``layerN.i.{conv1,bn1,conv2,bn2[,conv3,bn3],downsample.0,downsample.1}``, so an ImageNet
checkpoint saved from either library (as safetensors) loads with
:func:`babelseg.models.backbones.weights.load_backbone_weights`; its ``fc.*`` keys are reported as
unexpected and ignored. The stride of a bottleneck sits on its 3x3 conv (ResNet v1.5, as in both
libraries). Those checkpoints expect ImageNet-normalised RGB input, which our pipeline feeds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from babelseg.models.backbones.base import Backbone


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that always uses its running statistics and never trains its affine terms.

    Same parameter and buffer names as ``nn.BatchNorm2d``, so checkpoints load unchanged; the
    usual choice when fine-tuning a pretrained ResNet with a few images per device.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features)
        self.weight.requires_grad_(False)
        self.bias.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: ``float[B, C, H, W]``. Returns: ``float[B, C, H, W]``."""
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
        )


class BasicBlock(nn.Module):
    """Two 3x3 convs with a shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(
        self, *, in_channels: int, channels: int, stride: int, norm: type[nn.BatchNorm2d]
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = norm(channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_channels, channels, stride, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: ``float[B, C_in, H, W]``. Returns: ``float[B, C, H/stride, W/stride]``."""
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4, with a shortcut (ResNet-50/101)."""

    expansion = 4

    def __init__(
        self, *, in_channels: int, channels: int, stride: int, norm: type[nn.BatchNorm2d]
    ) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = norm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = norm(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = norm(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_channels, out_channels, stride, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: ``float[B, C_in, H, W]``. Returns: ``float[B, 4C, H/stride, W/stride]``."""
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + shortcut)


def _downsample(
    in_channels: int, out_channels: int, stride: int, norm: type[nn.BatchNorm2d]
) -> nn.Sequential | None:
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), norm(out_channels)
    )


# depth -> (block, blocks per stage)
RESNET_LAYOUTS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


class ResNetBackbone(Backbone):
    """ResNet returning the outputs of ``layer1..layer4`` (strides 4, 8, 16, 32).

    Args:
        depth: 18, 34, 50 or 101.
        frozen_bn: Use :class:`FrozenBatchNorm2d` (running statistics, no trained affine terms);
            sensible only with pretrained weights.
        zero_init_residual: Start the last norm of every block at zero scale (helps training from
            scratch; overwritten by loaded weights).
    """

    def __init__(
        self, *, depth: int = 50, frozen_bn: bool = False, zero_init_residual: bool = True
    ) -> None:
        super().__init__()
        if depth not in RESNET_LAYOUTS:
            raise ValueError(
                f"Unsupported ResNet depth {depth}; valid depths: {sorted(RESNET_LAYOUTS)}"
            )
        block, layers = RESNET_LAYOUTS[depth]
        norm = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = 64
        self.out_channels = []
        for i, n_blocks in enumerate(layers):
            channels = 64 * 2**i
            blocks = []
            for j in range(n_blocks):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(
                    block(in_channels=in_channels, channels=channels, stride=stride, norm=norm)
                )
                in_channels = channels * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.out_channels.append(in_channels)
        self.strides = [4, 8, 16, 32]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)
                elif isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Compute the pyramid.

        Args:
            images: ``float[B, 3, H, W]`` ImageNet-normalised images.
        Returns:
            Four tensors ``float[B, C_l, H/s_l, W/s_l]`` (s = 4, 8, 16, 32; C = 64..512 for
            depth 18/34, 256..2048 for 50/101).
        """
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        features = []
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(self, name)(x)
            features.append(x)
        return features
