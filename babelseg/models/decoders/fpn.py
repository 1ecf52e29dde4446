"""FPN pixel decoder: a backbone pyramid in, stride-4 mask features and a multi-scale list out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from babelseg.models.backbones.tiny import NORMS, conv_norm_act, norm_layer


@dataclass
class PixelDecoderOutput:
    """Output of a pixel decoder.

    Attributes:
        mask_features: ``float[B, dim, H/4, W/4]`` fused per-pixel features at the finest level.
        multi_scale: Three ``float[B, dim, H/s, W/s]`` maps, coarsest first (s = 32, 16, 8), for
            a query (Mask2Former-style) decoder.
    """

    mask_features: torch.Tensor
    multi_scale: list[torch.Tensor]


class FPNPixelDecoder(nn.Module):
    """Top-down feature pyramid with a Panoptic-FPN style fusion to stride 4.

    Each level gets a lateral ``1x1 conv + norm``; from the coarsest level down, the upsampled
    (nearest) coarser sum is added to the lateral. Levels at strides 8, 16, 32 get a ``3x3
    conv-norm-ReLU`` output conv and form ``multi_scale``. ``mask_features`` is the stride-4 sum
    plus all coarser outputs upsampled (bilinear) to stride 4, followed by a ``1x1 conv-norm-ReLU``
    (the stride-4 level gets no 3x3 conv of its own: it is the most expensive one, and the head that
    reads ``mask_features`` starts with a 3x3 conv).

    Args:
        in_channels: Channels of the backbone levels, finest first (strides 4, 8, 16, 32).
        dim: Channels of every output.
        norm: ``"gn"`` (default, batch independent), ``"bn"`` or ``"none"``.
    """

    def __init__(self, *, in_channels: Sequence[int], dim: int = 128, norm: str = "gn") -> None:
        super().__init__()
        in_channels = [int(c) for c in in_channels]
        if len(in_channels) != 4:
            raise ValueError(
                f"FPNPixelDecoder expects 4 pyramid levels (strides 4, 8, 16, 32), got "
                f"in_channels={in_channels}"
            )
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if norm not in NORMS:
            raise ValueError(f"Unknown norm {norm!r}; valid norms: {', '.join(NORMS)}")
        self.dim = dim
        self.lateral = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, dim, 1, bias=norm == "none"), norm_layer(norm, dim))
            for c in in_channels
        )
        # Output convs of the levels at strides 8, 16, 32 (index 1..3 of the pyramid).
        self.output = nn.ModuleList(conv_norm_act(dim, dim, norm=norm) for _ in in_channels[1:])
        self.fuse = conv_norm_act(dim, dim, kernel_size=1, norm=norm)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, features: Sequence[torch.Tensor]) -> PixelDecoderOutput:
        """Decode a pyramid.

        Args:
            features: Four ``float[B, C_l, H/s_l, W/s_l]`` maps, finest first (s = 4, 8, 16, 32).
        Returns:
            :class:`PixelDecoderOutput` with ``dim`` channels everywhere.
        """
        assert len(features) == len(self.lateral), "pyramid depth differs from in_channels"
        laterals = [lateral(f) for lateral, f in zip(self.lateral, features)]
        top_down = [laterals[-1]]
        for lat in reversed(laterals[:-1]):
            top_down.insert(0, lat + upsample(top_down[0], size=lat.shape[-2:], mode="nearest"))
        outputs = [conv(x) for conv, x in zip(self.output, top_down[1:])]
        fused = top_down[0]
        size = fused.shape[-2:]
        for out in outputs:
            fused = fused + upsample(out, size=size, mode="bilinear")
        return PixelDecoderOutput(mask_features=self.fuse(fused), multi_scale=outputs[::-1])


def upsample(x: torch.Tensor, *, size: Sequence[int], mode: str) -> torch.Tensor:
    """``F.interpolate`` of ``float[B, C, h, w]`` to ``[B, C, *size]``, in the input's layout.

    On the CPU, torch's kernels for channels-first maps this small (a pyramid level: 4-32 px a
    side, C = the decoder width) run several times slower than the channels-last ones, even with
    the two layout copies; the results are identical. ``benchmarks/mask_speed.py`` (the
    inference ratio against Mask2Former) is where this shows; elsewhere it is plain
    ``F.interpolate``.
    """
    align = False if mode == "bilinear" else None
    if x.device.type != "cpu" or x.is_contiguous(memory_format=torch.channels_last):
        return F.interpolate(x, size=tuple(size), mode=mode, align_corners=align)
    x = x.contiguous(memory_format=torch.channels_last)
    out = F.interpolate(x, size=tuple(size), mode=mode, align_corners=align)
    return out.contiguous()
