"""Multi-head attention on ``F.scaled_dot_product_attention`` (the query decoder's attention)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head attention on ``F.scaled_dot_product_attention`` (batch first).

    Args:
        dim: Model width C (a multiple of ``num_heads``).
        num_heads: Heads.
    """

    def __init__(self, *, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Args:
            query: ``float[B, Lq, C]``.
            key: ``float[B, Lk, C]``.
            value: ``float[B, Lk, C]``.
            mask: ``bool[B, 1, Lq or 1, Lk]``, True where attending is allowed.
        Returns:
            ``float[B, Lq, C]``.
        """
        b, lq, c = query.shape
        h = self.num_heads

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, t.shape[1], h, c // h).transpose(1, 2)

        q, k, v = heads(self.q_proj(query)), heads(self.k_proj(key)), heads(self.v_proj(value))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(b, lq, c))
