"""Text embeddings as classifiers: the project's central idea, in one home.

SentenceLabels.txt eq. 1-2: a pixel (or query) embedding ``e`` scores label ``k`` by the scaled
cosine similarity ``cos(e, t_k) / tau`` with the label's text embedding ``t_k``.

- :class:`LearnableTemperature`: ``1 / tau``, learned or fixed;
- :func:`cosine_logits`: every pixel against every text (the pixel recipes);
- :class:`TextClassifier`: query class embeddings against the texts plus one learnable "no
  object" / background embedding (the mask recipes: LMSeg eq. 1, DaTaSeg's frozen text
  classifiers with a shared background);
- :func:`background_logits`: the scores both classifiers compute (the per-dataset background of
  DaTaSeg's ablation is :mod:`babelseg.models.heads.dataset_modules`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class LearnableTemperature(nn.Module):
    """``1 / tau`` kept as ``exp(log_scale)``, clamped to at most 100 as in CLIP.

    Args:
        temperature: Initial tau (> 0).
        learnable: Whether tau is a trained parameter.
    """

    def __init__(self, *, temperature: float = 0.07, learnable: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        value = torch.tensor(math.log(1.0 / temperature))
        if learnable:
            self.log_scale = nn.Parameter(value)
        else:
            self.register_buffer("log_scale", value)

    def forward(self) -> torch.Tensor:
        """The scale ``1 / tau`` as a 0-d tensor."""
        return self.log_scale.clamp(max=math.log(100.0)).exp()


def cosine_logits(
    pixel_embeddings: torch.Tensor,
    text_embeddings: torch.Tensor,
    scale: torch.Tensor | float,
    *,
    pixel_major: bool = False,
) -> torch.Tensor:
    """Scaled cosine similarity of every pixel with every text.

    Args:
        pixel_embeddings: ``float[B, D, H, W]``.
        text_embeddings: ``float[K, D]`` (normalised or not).
        scale: ``1 / tau``.
        pixel_major: Return ``float[B, H, W, K]`` (contiguous over classes, for per-pixel
            top-k over large vocabularies).
    Returns:
        ``float[B, K, H, W]`` logits (or ``[B, H, W, K]``).
    """
    pix = F.normalize(pixel_embeddings, dim=1)
    txt = F.normalize(text_embeddings.to(pix.dtype), dim=1)
    if pixel_major:
        return torch.einsum("bdhw,kd->bhwk", pix, txt) * scale
    return torch.einsum("bdhw,kd->bkhw", pix, txt) * scale


def background_logits(
    class_embeddings: torch.Tensor,
    text: torch.Tensor,
    background: torch.Tensor,
    scale: torch.Tensor | float,
) -> torch.Tensor:
    """Scaled cosine similarity of ``float[..., Q, D]`` class embeddings with the ``float[K, D]``
    texts and then the ``float[D]`` background: ``float[..., Q, K + 1]``."""
    keys = torch.cat([text.to(background.dtype), background[None]], dim=0)
    keys = F.normalize(keys, dim=-1)
    return scale * F.normalize(class_embeddings, dim=-1) @ keys.T


class TextClassifier(nn.Module):
    """Scaled cosine similarity of class embeddings with texts and a learnable background.

    ``logits[q, k] = scale * cos(e_q, t_k)`` for the K texts, and ``k = K`` (last) against the
    learnable no-object / background embedding.

    Args:
        embed_dim: D.
        temperature: Initial tau (``scale = 1 / tau``; LMSeg: 0.07).
        learn_temperature: Train tau.
    """

    def __init__(self, *, embed_dim: int, temperature: float, learn_temperature: bool) -> None:
        super().__init__()
        self.temperature = LearnableTemperature(
            temperature=temperature, learnable=learn_temperature
        )
        self.background = nn.Parameter(F.normalize(torch.randn(embed_dim), dim=0))

    def forward(
        self, class_embeddings: torch.Tensor, text: torch.Tensor, *, dataset: str | None = None
    ) -> torch.Tensor:
        """``float[..., Q, D]`` and ``float[K, D]`` -> ``float[..., Q, K + 1]`` logits
        (``dataset``: unused, one background serves every dataset)."""
        return background_logits(class_embeddings, text, self.background, self.temperature())

    def per_image(
        self, class_embeddings: torch.Tensor, texts: Sequence[torch.Tensor]
    ) -> list[torch.Tensor]:
        """``float[B, Q, D]`` and B texts ``float[K_b, D]`` -> B logits ``float[Q, K_b + 1]``
        (one matrix product per distinct text tensor)."""
        out: list[torch.Tensor | None] = [None] * len(texts)
        groups: dict[int, list[int]] = {}
        for b, t in enumerate(texts):
            groups.setdefault(id(t), []).append(b)
        for idx in groups.values():
            logits = self(class_embeddings[idx], texts[idx[0]])
            for j, b in enumerate(idx):
                out[b] = logits[j]
        return out  # type: ignore[return-value]
