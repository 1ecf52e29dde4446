"""MS3's image encoder: backbone -> pixel decoder -> two projection heads (language, visual).

MS3.txt section 4.1: "we add two 3-layer projection heads after the ASPP layer [...] resulting in
two 512-d dense embedding maps respectively for pairing language and visual embeddings". The
language head's width is the text-embedding dimension D (it is compared with the text
embeddings T); the visual head's is free (its embeddings are only compared with the momentum
visual embeddings V of the same head).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from babelseg.models.backbones.base import Backbone
from babelseg.models.decoders.fpn import FPNPixelDecoder
from babelseg.models.heads.projection import ProjectionHead
from babelseg.models.pixel_model import OUTPUT_STRIDE, check_finest_stride, pad_to_multiple


@dataclass
class TwoHeadEmbeddings:
    """Both embedding maps of a batch (not normalised).

    Attributes:
        language: ``float[B, D, h, w]`` (paired with the text embeddings T).
        visual: ``float[B, D_v, h, w]`` (paired with the visual embeddings V).
    """

    language: torch.Tensor
    visual: torch.Tensor


class TwoHeadPixelModel(nn.Module):
    """Backbone, pixel decoder and the language and visual projection heads.

    The names ``backbone`` and ``decoder`` are what ``train.init_from`` transfers and what frozen
    fine-tuning freezes; the heads stay behind (fine-tuning trains a head of its own).

    Args:
        backbone: Feature pyramid at strides 4, 8, 16, 32.
        decoder: Pixel decoder built for ``backbone.out_channels``.
        language_head: Projection to the text dimension D.
        visual_head: Projection to the visual-embedding dimension.
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        decoder: FPNPixelDecoder,
        language_head: ProjectionHead,
        visual_head: ProjectionHead,
    ) -> None:
        super().__init__()
        check_finest_stride(backbone)
        self.backbone = backbone
        self.decoder = decoder
        self.language_head = language_head
        self.visual_head = visual_head
        self.pad_multiple = max(backbone.strides)

    @property
    def embed_dim(self) -> int:
        """D: width of the language embeddings."""
        return self.language_head.embed_dim

    @property
    def visual_dim(self) -> int:
        """Width of the visual embeddings."""
        return self.visual_head.embed_dim

    def _decoded(self, images: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        height, width = images.shape[-2:]
        features = self.decoder(self.backbone(pad_to_multiple(images, self.pad_multiple)))
        return features.mask_features, -(-height // OUTPUT_STRIDE), -(-width // OUTPUT_STRIDE)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``float[B, 3, H, W]`` -> decoder features ``float[B, C, ceil(H/4), ceil(W/4)]``."""
        features, h, w = self._decoded(images)
        return features[..., :h, :w]

    def forward(self, images: torch.Tensor) -> TwoHeadEmbeddings:
        """``float[B, 3, H, W]`` -> both maps at ``ceil(H/4) x ceil(W/4)`` (cell ``(i, j)``
        covers input pixels ``[4i, 4i+4) x [4j, 4j+4)``)."""
        features, h, w = self._decoded(images)
        return TwoHeadEmbeddings(
            language=self.language_head(features)[..., :h, :w],
            visual=self.visual_head(features)[..., :h, :w],
        )
