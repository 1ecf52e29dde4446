"""The text-encoder protocol: texts in, L2-normalised vectors out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class TextEncoder(Protocol):
    """Turns label texts into embeddings.

    Attributes:
        id: Stable identifier of the encoder and its weights; the embedding-cache key.
        dim: Embedding dimension D.
    """

    id: str
    dim: int

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Encode texts.

        Args:
            texts: K strings.
        Returns:
            ``float32[K, D]`` embeddings on the CPU, each row of unit L2 norm.
        """
        ...
