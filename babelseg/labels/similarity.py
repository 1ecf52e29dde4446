"""How alike a set of class-text embeddings is (MS3.txt Table 1): the mean cosine similarity over
all pairs of distinct classes, and the similarity of named pairs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def most_similar_pairs(
    embeddings: torch.Tensor, names: Sequence[str], *, count: int
) -> list[tuple[str, str]]:
    """The ``count`` pairs of distinct classes with the highest cosine similarity.

    Args:
        embeddings: ``float[K, D]`` class-text embeddings.
        names: The K class names (texts), in the same order.
        count: Pairs wanted (fewer when there are fewer pairs).
    Returns:
        ``[(name_a, name_b), ...]``, most similar first (``a`` before ``b`` in ``names``).
    """
    sim = _cosine(embeddings)
    k = sim.shape[0]
    upper = torch.triu(torch.ones(k, k, dtype=torch.bool, device=sim.device), diagonal=1)
    scores = sim.masked_fill(~upper, float("-inf")).flatten()
    top = torch.topk(scores, min(count, k * (k - 1) // 2)).indices.tolist()
    return [(names[i // k], names[i % k]) for i in top]


def similarity_summary(
    embeddings: torch.Tensor, names: Sequence[str], pairs: Sequence[tuple[str, str]]
) -> dict:
    """Table 1's numbers for one set of embeddings.

    Args:
        embeddings: ``float[K, D]`` class-text embeddings (K >= 2).
        names: The K class names.
        pairs: Named pairs to report (both names must be in ``names``).
    Returns:
        ``{"mean": mean similarity over the K(K-1)/2 pairs, "pairs": {"a | b": similarity}}``
        (JSON-safe floats).
    """
    sim = _cosine(embeddings)
    k = sim.shape[0]
    if k < 2:
        raise ValueError(f"similarity_summary needs at least 2 classes, got {k}.")
    index = {n: i for i, n in enumerate(names)}
    upper = torch.triu(torch.ones(k, k, dtype=torch.bool, device=sim.device), diagonal=1)
    return {
        "mean": float(sim[upper].mean()),
        "pairs": {f"{a} | {b}": float(sim[index[a], index[b]]) for a, b in pairs},
    }


def _cosine(embeddings: torch.Tensor) -> torch.Tensor:
    unit = F.normalize(embeddings.detach().float(), dim=1)
    return unit @ unit.T
