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
    """:class:`PixelOutput` (the language embeddings) plus what the ``ms3`` recipe's losses read.

    Attributes:
        visual_embeddings: ``float[B, D_v, H', W']`` the visual projection head's map.
        momentum_embeddings: ``float[B, D, H', W']`` the momentum network's language map (no
            grad); None outside training or when no memory bank reads it.
        momentum_visual: ``float[B, D_v, H', W']`` the momentum network's visual map (no grad);
            None likewise.
        features: ``float[B, C, H', W']`` frozen decoder features (no grad), only during the
            language-improvement stage (the heads are not run then).
    """

    visual_embeddings: torch.Tensor | None = None
    momentum_embeddings: torch.Tensor | None = None
    momentum_visual: torch.Tensor | None = None
    features: torch.Tensor | None = None


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
