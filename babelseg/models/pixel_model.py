"""Per-pixel embedding model: backbone -> FPN pixel decoder -> pixel-embedding head."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from babelseg.models.backbones.base import Backbone
from babelseg.models.backbones.weights import LoadReport
from babelseg.models.decoders.fpn import FPNPixelDecoder
from babelseg.models.heads.pixel_embedding import PixelEmbeddingHead
from babelseg.models.outputs import PixelOutput

OUTPUT_STRIDE = 4


def upsample_embeddings(
    embeddings: torch.Tensor, *, size: tuple[int, int], stride: int = OUTPUT_STRIDE
) -> torch.Tensor:
    """Upsample stride-``stride`` maps to the input resolution with the right pixel alignment.

    Output cell ``(i, j)`` of the model covers input pixels ``[s*i, s*i + s)``; this upsamples by
    exactly ``s`` (bilinear, pixel centres aligned) and crops to ``size``, which is what
    ``F.interpolate(size=size)`` does not do when ``H`` or ``W`` is not a multiple of ``s``.

    Args:
        embeddings: ``float[B, D, ceil(H/s), ceil(W/s)]``.
        size: ``(H, W)`` of the input image.
        stride: Output stride s of ``embeddings``.
    Returns:
        ``float[B, D, H, W]``.
    """
    up = F.interpolate(embeddings, scale_factor=stride, mode="bilinear", align_corners=False)
    return up[..., : size[0], : size[1]]


def check_finest_stride(backbone: Backbone) -> None:
    """Raise ValueError unless the backbone's finest level has stride ``OUTPUT_STRIDE``."""
    if list(backbone.strides)[0] != OUTPUT_STRIDE:
        raise ValueError(
            f"The backbone's finest level must have stride {OUTPUT_STRIDE}, got strides "
            f"{backbone.strides}"
        )


def pad_to_multiple(images: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad ``float[B, C, H, W]`` at the bottom and right up to multiples of ``multiple``."""
    height, width = images.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h or pad_w:
        images = F.pad(images, (0, pad_w, 0, pad_h))
    return images


class PixelEmbeddingModel(nn.Module):
    """Predicts one embedding per stride-4 cell, compared with text embeddings downstream.

    Any input size works: the batch is zero-padded (right/bottom) to a multiple of the backbone's
    largest stride and the output is cropped back to ``ceil(H/4) x ceil(W/4)``.

    Args:
        backbone: Feature pyramid at strides 4, 8, 16, 32.
        decoder: Pixel decoder built for ``backbone.out_channels``.
        head: Head mapping ``decoder.dim`` channels to the text-embedding dimension.
    """

    def __init__(
        self, *, backbone: Backbone, decoder: FPNPixelDecoder, head: PixelEmbeddingHead
    ) -> None:
        super().__init__()
        check_finest_stride(backbone)
        self.backbone = backbone
        self.decoder = decoder
        self.head = head
        self.pad_multiple = max(backbone.strides)
        # Set by build_pixel_model when backbone weights were loaded from a file.
        self.weights_report: LoadReport | None = None

    @property
    def embed_dim(self) -> int:
        """Dimension D of the predicted embeddings."""
        return self.head.embed_dim

    def forward(self, images: torch.Tensor) -> PixelOutput:
        """Embed every stride-4 cell.

        Args:
            images: ``float[B, 3, H, W]`` ImageNet-normalised images, any H and W.
        Returns:
            :class:`PixelOutput` with ``embeddings`` ``float[B, D, ceil(H/4), ceil(W/4)]``; cell
            ``(i, j)`` covers input pixels ``[4i, 4i+4) x [4j, 4j+4)``.
        """
        height, width = images.shape[-2:]
        images = pad_to_multiple(images, self.pad_multiple)
        features = self.backbone(images)
        decoded = self.decoder(features)
        embeddings = self.head(decoded.mask_features)
        # ceil by integer division: math.ceil on a symbolic size cannot be saved by torch.export
        out_h, out_w = -(-height // OUTPUT_STRIDE), -(-width // OUTPUT_STRIDE)
        return PixelOutput(embeddings=embeddings[..., :out_h, :out_w])

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """Trainable parameters of the backbone."""
        return (p for p in self.backbone.parameters() if p.requires_grad)

    def other_parameters(self) -> Iterator[nn.Parameter]:
        """Trainable parameters of the decoder and head."""
        backbone_ids = {id(p) for p in self.backbone.parameters()}
        return (p for p in self.parameters() if p.requires_grad and id(p) not in backbone_ids)

    def param_groups(self, *, lr: float, backbone_lr_multiplier: float = 1.0) -> list[dict]:
        """Optimizer parameter groups with a backbone learning-rate multiplier.

        Args:
            lr: Base learning rate (decoder and head).
            backbone_lr_multiplier: Backbone learning rate is ``lr * backbone_lr_multiplier``.
        Returns:
            ``[{"name": "backbone", "params", "lr"}, {"name": "other", "params", "lr"}]``, groups
            without trainable parameters left out; pass to ``torch.optim.AdamW``.
        """
        groups = [
            {
                "name": "backbone",
                "params": list(self.backbone_parameters()),
                "lr": lr * backbone_lr_multiplier,
            },
            {"name": "other", "params": list(self.other_parameters()), "lr": lr},
        ]
        return [g for g in groups if g["params"]]
