"""The ``model:`` section of a run config: the network architecture every recipe builds from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModelConfig:
    """Network architecture.

    Attributes:
        backbone: Backbone name (see ``babelseg.models.builders.BACKBONES``).
        backbone_kwargs: Constructor arguments of the backbone.
        weights: Local safetensors file of backbone weights to start from.
        decoder_dim: Channels of the FPN pixel decoder.
        num_queries: Mask-classification recipes: learnable queries N.
        query_layers: Query-decoder layers L.
        query_heads: Attention heads of the query decoder.
        query_ffn_dim: Hidden size of the query decoder's feed-forward blocks.
        masked_attention: Mask2Former masked cross-attention.
    """

    backbone: str = "tiny"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    decoder_dim: int = 128
    num_queries: int = 50
    query_layers: int = 3
    query_heads: int = 4
    query_ffn_dim: int = 256
    masked_attention: bool = True
