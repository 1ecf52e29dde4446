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


def table1_start(
    frozen: torch.Tensor, start: torch.Tensor, names: Sequence[str], *, count: int
) -> dict:
    """Table 1 before M_I, on the ``count`` class pairs most alike under the frozen encoder.

    Args:
        frozen: ``float[K, D]`` the frozen text encoder's embeddings of ``names``.
        start: ``float[K, D]`` the prompted embeddings with the context at initialisation.
        names: The K class texts.
    Returns:
        ``{"frozen_encoder": summary, "before": summary, "pairs": [[a, b], ...]}``
        (:func:`similarity_summary` of each).
    """
    pairs = most_similar_pairs(frozen, names, count=count)
    return {
        "frozen_encoder": similarity_summary(frozen, names, pairs),
        "before": similarity_summary(start, names, pairs),
        "pairs": [list(p) for p in pairs],
    }


def same_group_pairs(groups: Sequence[Sequence[int]], num_classes: int) -> torch.Tensor:
    """``bool[K, K]``: True at ``(i, j)``, ``i < j``, when classes i and j share a group (a
    dataset); built once, read by :func:`within_group_similarity` at every step."""
    member = torch.zeros(len(groups), num_classes, dtype=torch.bool)
    for g, index in enumerate(groups):
        member[g, list(index)] = True
    same = (member[:, :, None] & member[:, None, :]).any(0)
    return same & torch.ones_like(same).triu(diagonal=1)


def within_group_similarity(
    embeddings: torch.Tensor, pairs: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean cosine similarity over pairs of distinct classes that share a group (a dataset).

    What a softmax over one dataset's classes has to tell apart: the closer its class vectors,
    the smaller the margins of cosine logits. A tensor, so that a training step can log it
    without a device synchronisation.

    Args:
        embeddings: ``float[K, D]`` class vectors (text embeddings, or MS3's visual ones).
        pairs: :func:`same_group_pairs` of the K classes.
        valid: ``bool[K]`` rows to use (e.g. the classes whose memory bank holds entries).
    Returns:
        ``float[]`` the mean (NaN when no group has two valid classes).
    """
    if valid is not None:
        pairs = pairs & valid[:, None] & valid[None, :]
    return _cosine(embeddings)[pairs].mean()


def _cosine(embeddings: torch.Tensor) -> torch.Tensor:
    unit = F.normalize(embeddings.detach().float(), dim=1)
    return unit @ unit.T
