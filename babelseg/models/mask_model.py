"""Mask-classification model: backbone -> FPN pixel decoder -> query decoder (Mask2Former-style),
shared by the ``lmseg`` and ``dataseg`` recipes, and its builder."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from babelseg.models.backbones.base import Backbone
from babelseg.models.backbones.weights import LoadReport
from babelseg.models.builders import build_backbone_with_weights
from babelseg.models.decoders.fpn import FPNPixelDecoder
from babelseg.models.heads.query_decoder import QueryDecoder
from babelseg.models.outputs import MaskOutput
from babelseg.models.pixel_model import OUTPUT_STRIDE, check_finest_stride, pad_to_multiple

logger = logging.getLogger(__name__)


class MaskClassificationModel(nn.Module):
    """Predicts N masks with class embeddings per image.

    Any input size works: the batch is zero-padded (right/bottom) to a multiple of the backbone's
    largest stride and the mask logits are cropped back to ``ceil(H/4) x ceil(W/4)``; cell
    ``(i, j)`` covers input pixels ``[4i, 4i+4) x [4j, 4j+4)``.

    The attribute names ``backbone`` and ``decoder`` are what ``train.init_from`` transfers between
    recipes; keep them.

    Args:
        backbone: Feature pyramid at strides 4, 8, 16, 32.
        decoder: FPN pixel decoder built for ``backbone.out_channels``.
        query_decoder: Query decoder reading ``decoder.dim`` channels.
    """

    def __init__(
        self, *, backbone: Backbone, decoder: FPNPixelDecoder, query_decoder: QueryDecoder
    ) -> None:
        super().__init__()
        check_finest_stride(backbone)
        self.backbone = backbone
        self.decoder = decoder
        self.query_decoder = query_decoder
        self.pad_multiple = max(backbone.strides)
        # Set by build_mask_model when backbone weights were loaded from a file.
        self.weights_report: LoadReport | None = None

    @property
    def embed_dim(self) -> int:
        """Dimension D of the class embeddings."""
        return self.query_decoder.embed_dim

    @property
    def num_queries(self) -> int:
        """Number N of shared queries (each image's dataset-specific queries come on top)."""
        return self.query_decoder.num_queries

    def forward(
        self,
        images: torch.Tensor,
        texts: list[torch.Tensor] | None = None,
        dataset_rows: torch.Tensor | None = None,
    ) -> MaskOutput:
        """Predict masks and class embeddings.

        Args:
            images: ``float[B, 3, H, W]`` ImageNet-normalised images, any H and W.
            texts: Per image ``float[K_b, D]`` label-space text embeddings (used by the query
                decoder's text attention when it has one).
            dataset_rows: ``int64[B]`` each image's dataset row (the query decoder's
                dataset-specific modules, when it has them).
        Returns:
            :class:`MaskOutput`: ``mask_logits`` ``float[B, N, ceil(H/4), ceil(W/4)]`` (N: the
            shared queries plus any dataset-specific ones),
            ``class_embeddings`` ``float[B, N, D]``, ``aux`` the earlier layers' (cropped alike).
        """
        height, width = images.shape[-2:]
        images = pad_to_multiple(images, self.pad_multiple)
        decoded = self.decoder(self.backbone(images))
        out = self.query_decoder(decoded.mask_features, decoded.multi_scale, texts, dataset_rows)
        out_h, out_w = math.ceil(height / OUTPUT_STRIDE), math.ceil(width / OUTPUT_STRIDE)
        if out.mask_logits.shape[-2:] == (out_h, out_w):
            return out
        return MaskOutput(
            mask_logits=out.mask_logits[..., :out_h, :out_w],
            class_embeddings=out.class_embeddings,
            aux=[
                MaskOutput(
                    mask_logits=a.mask_logits[..., :out_h, :out_w],
                    class_embeddings=a.class_embeddings,
                )
                for a in out.aux or []
            ],
        )


def build_mask_model(
    *,
    backbone: str,
    backbone_kwargs: dict[str, Any] | None = None,
    decoder_dim: int = 128,
    embed_dim: int,
    num_queries: int = 50,
    query_layers: int = 3,
    query_heads: int = 4,
    query_ffn_dim: int = 256,
    masked_attention: bool = True,
    text_attention: bool = False,
    decoding_order: str = "visual-text",
    weights: str | Path | None = None,
    weights_prefix: str | None = None,
    decoder_norm: str = "gn",
    query_dim: int | None = None,
    num_levels: int = 3,
    num_datasets: int = 0,
    dataset_queries: int = 0,
    dataset_class_heads: bool = False,
) -> MaskClassificationModel:
    """Wire backbone -> FPN pixel decoder -> query decoder.

    Args:
        backbone: Backbone name (a key of ``babelseg.models.builders.BACKBONES``).
        backbone_kwargs: Backbone constructor arguments.
        decoder_dim: Channels of the FPN pixel decoder (and of the mask features).
        embed_dim: Text-embedding dimension D.
        num_queries: Queries N.
        query_layers: Query-decoder layers L.
        query_heads: Attention heads.
        query_ffn_dim: Feed-forward hidden size.
        masked_attention: Mask2Former masked cross-attention.
        text_attention: LMSeg category-guided decoding.
        decoding_order: ``"visual-text"`` or ``"text-visual"``.
        weights: Optional local backbone weights file (as in ``build_pixel_model``).
        weights_prefix: Prefix to strip from the file's keys.
        decoder_norm: Norm of the pixel decoder: ``"gn"``, ``"bn"`` or ``"none"``.
        query_dim: Hidden size of the query decoder (default ``decoder_dim``, as Mask2Former).
        num_levels: Multi-scale levels the query decoder cycles through (at most 3).
        num_datasets / dataset_queries / dataset_class_heads: The query decoder's
            dataset-specific modules (DaTaSeg's ablation; none by default).
    Returns:
        The model; ``model.weights_report`` holds the :class:`LoadReport` when weights were given.
    """
    module, report = build_backbone_with_weights(
        backbone, backbone_kwargs, weights=weights, weights_prefix=weights_prefix
    )
    decoder = FPNPixelDecoder(in_channels=module.out_channels, dim=decoder_dim, norm=decoder_norm)
    query_decoder = QueryDecoder(
        in_channels=decoder_dim,
        hidden_dim=query_dim or decoder_dim,
        embed_dim=embed_dim,
        num_queries=num_queries,
        num_layers=query_layers,
        num_heads=query_heads,
        ffn_dim=query_ffn_dim,
        num_levels=num_levels,
        masked_attention=masked_attention,
        text_attention=text_attention,
        decoding_order=decoding_order,
        num_datasets=num_datasets,
        dataset_queries=dataset_queries,
        dataset_class_heads=dataset_class_heads,
    )
    model = MaskClassificationModel(backbone=module, decoder=decoder, query_decoder=query_decoder)
    model.weights_report = report
    return model
