"""Model outputs as dataclasses with documented shapes."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PixelOutput:
    """Output of a per-pixel embedding model.

    Attributes:
        embeddings: ``float[B, D, H', W']`` pixel embeddings (not normalised), usually at stride 4
            of the input; D is the text-embedding dimension.
    """

    embeddings: torch.Tensor


@dataclass
class MS3Output(PixelOutput):
    """:class:`PixelOutput` plus the momentum network's embeddings of the same images (the
    ``ms3`` recipe).

    Attributes:
        momentum_embeddings: ``float[B, D, H', W']`` (no grad), None outside training or when
            neither the visual loss nor the multi-label extension is on.
    """

    momentum_embeddings: torch.Tensor | None = None


@dataclass
class MaskOutput:
    """Output of a mask-classification (query) model.

    Attributes:
        mask_logits: ``float[B, Q, H', W']`` mask logits of Q queries.
        class_embeddings: ``float[B, Q, D]`` class embeddings of the queries.
        aux: Outputs of intermediate decoder layers (same fields), for auxiliary losses.
    """

    mask_logits: torch.Tensor
    class_embeddings: torch.Tensor
    aux: list[MaskOutput] | None = None
