"""AutoUniSeg's UniSegHead (eq. 4-6) and orthogonality loss (eq. 7-8): pixel embeddings scored
against the unified label embeddings, then mapped to each dataset's labels.

UniSegHead: ``u = s * cos(p, X_u)`` over the unified nodes, then each dataset's label scores in
one of two forms (``recipe.autounify.dataset_logits``):

- ``logsumexp`` (the recipe's default, our deviation): ``s_c = log sum_{r -> c} exp(u_r)``,
  eq. 5 applied to probabilities: a label's probability is the sum of its unified classes'
  probabilities, so a coarse label does not gain from having many children;
- ``paper_sum``: eq. 5 as printed, ``s = M u``: a label's logit is the sum of its unified
  classes' logits (0 for a label no class maps to).

With a continuous mapping (graph phases) both sums are weighted by the adjacency. The
orthogonality loss (``recipe.autounify.graph_loss``) is either ``paper_entropy`` (eq. 7 as
printed, the recipe's default: ``-sum_i p_ii log p_ii`` with ``p_i = softmax(X_u x_i)``) or
``cosine_ce`` (ours: a cross-entropy of cosine similarities with a temperature). The evidence
rows that chose the defaults are named in
:class:`~babelseg.recipes.autounify_config.AutoUnifyConfig` (``benchmarks/results/evidence/``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from babelseg.models.heads.text_classifier import LearnableTemperature, cosine_logits
from babelseg.models.outputs import PixelOutput
from babelseg.unify.graph import GraphOutput


def mapped_logits(unified: torch.Tensor, mapping: torch.Tensor) -> torch.Tensor:
    """Eq. 5 in probability space: ``s_c = log sum_r M[r, c] exp(u_r)``.

    Args:
        unified: ``float[B, N, h, w]`` unified logits (eq. 4).
        mapping: ``float[N, K]`` boolean or continuous mapping (rows of unmapped nodes are 0).
    Returns:
        ``float[B, K, h, w]`` dataset label logits (``log 1e-30`` where no node maps).
    """
    top = unified.amax(1, keepdim=True)
    probs = torch.einsum("bnhw,nk->bkhw", torch.exp(unified - top), mapping.to(unified.dtype))
    return torch.log(probs.clamp(min=1e-30)) + top


DATASET_LOGITS = ("logsumexp", "paper_sum")
"""The forms of eq. 5 (``recipe.autounify.dataset_logits``)."""
GRAPH_LOSSES = ("cosine_ce", "paper_entropy")
"""The forms of eq. 7 (``recipe.autounify.graph_loss``)."""


def summed_logits(unified: torch.Tensor, mapping: torch.Tensor) -> torch.Tensor:
    """Eq. 5 as printed: ``s = M u``, each label's logit the (weighted) sum of its unified
    classes' logits.

    Args:
        unified: ``float[B, N, h, w]`` unified logits (eq. 4).
        mapping: ``float[N, K]`` boolean or continuous mapping (rows of unmapped nodes are 0).
    Returns:
        ``float[B, K, h, w]`` dataset label logits (0 where no node maps).
    """
    return torch.einsum("bnhw,nk->bkhw", unified, mapping.to(unified.dtype))


def dataset_logits(unified: torch.Tensor, mapping: torch.Tensor, form: str) -> torch.Tensor:
    """Eq. 5 in the chosen ``form`` (:data:`DATASET_LOGITS`): ``float[B, N, h, w]`` unified
    logits and a ``float[N, K]`` mapping -> ``float[B, K, h, w]`` dataset label logits."""
    if form == "logsumexp":
        return mapped_logits(unified, mapping)
    if form == "paper_sum":
        return summed_logits(unified, mapping)
    raise ValueError(
        f"recipe.autounify.dataset_logits must be one of {', '.join(DATASET_LOGITS)}, got '{form}'."
    )


def paper_orthogonality_loss(unified: torch.Tensor) -> torch.Tensor:
    """Eq. 7 as printed: ``-sum_i p_ii log p_ii`` with ``p_i = softmax_j(x_j . x_i)`` (dot
    products of the unified embeddings, no normalisation or temperature).

    Args:
        unified: ``float[N, D]`` unified label embeddings (active nodes).
    Returns:
        0-d loss (a sum over the N nodes, as in the paper).
    """
    log_p = torch.log_softmax(unified @ unified.t(), dim=1).diagonal()
    return -(log_p.exp() * log_p).sum()


def graph_loss(unified: torch.Tensor, form: str, tau: float) -> torch.Tensor:
    """Eq. 7 in the chosen ``form`` (:data:`GRAPH_LOSSES`) over ``float[N, D]`` unified
    embeddings; ``tau`` is the temperature of ``cosine_ce``. Returns a 0-d loss."""
    if form == "cosine_ce":
        return orthogonality_loss(unified, tau)
    if form == "paper_entropy":
        return paper_orthogonality_loss(unified)
    raise ValueError(
        f"recipe.autounify.graph_loss must be one of {', '.join(GRAPH_LOSSES)}, got '{form}'."
    )


def orthogonality_loss(unified: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq. 7 as a cross-entropy: each unified embedding must be closest to itself.

    Args:
        unified: ``float[N, D]`` unified label embeddings (active nodes).
        tau: Temperature of the cosine similarities.
    Returns:
        0-d ``-1/N sum_i log softmax_j(cos(x_i, x_j) / tau)_i``.
    """
    x = F.normalize(unified, dim=1)
    sim = x @ x.t() / tau
    return F.cross_entropy(sim, torch.arange(len(x), device=x.device))


class UniSegHead(nn.Module):
    """Pixel embeddings -> unified logits (eq. 4) -> dataset logits through a mapping (eq. 5).

    Args:
        temperature: Initial tau of the cosine logits (learned).
        dataset_logits: Eq. 5's form, one of :data:`DATASET_LOGITS`.
    """

    def __init__(self, *, temperature: float = 0.07, dataset_logits: str = "logsumexp") -> None:
        super().__init__()
        if dataset_logits not in DATASET_LOGITS:
            raise ValueError(
                f"dataset_logits must be one of {', '.join(DATASET_LOGITS)}, got "
                f"'{dataset_logits}'."
            )
        self.temperature = LearnableTemperature(temperature=temperature, learnable=True)
        self.form = dataset_logits

    def to_dataset(self, unified: torch.Tensor, mapping: torch.Tensor) -> torch.Tensor:
        """Eq. 5 in this head's form: ``float[B, N, h, w]`` unified logits and ``float[N, K]``
        mapping -> ``float[B, K, h, w]`` label logits."""
        return dataset_logits(unified, mapping, self.form)

    def unified_logits(
        self, embeddings: torch.Tensor, unified: torch.Tensor, scale: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``float[B, D, h, w]`` x ``float[N, D]`` -> ``float[B, N, h, w]`` (eq. 4); ``scale``:
        the head's ``1 / tau`` when the caller already has it (from the forward pass)."""
        return cosine_logits(embeddings, unified, self.temperature() if scale is None else scale)

    def forward(
        self, embeddings: torch.Tensor, unified: torch.Tensor, mapping: torch.Tensor
    ) -> torch.Tensor:
        """``float[B, D, h, w]``, ``float[N, D]``, ``float[N, K]`` -> ``float[B, K, h, w]``."""
        return self.to_dataset(self.unified_logits(embeddings, unified), mapping)


def zero_shot_logits(
    unified: torch.Tensor,
    text: torch.Tensor,
    label_similarity: torch.Tensor,
    slot_labels: list[list[int]],
    active: torch.Tensor,
    *,
    tau: float,
) -> torch.Tensor:
    """Unified logits -> scores of any vocabulary: every unified class shares its probability
    among the asked texts by ``softmax_k(max_{c in labels(r)} cos(t_k, f_c) / tau)``.

    Args:
        unified: ``float[B, N, h, w]`` unified logits.
        text: ``float[K, D]`` the asked texts.
        label_similarity: ``float[K, L]`` cosine similarity of the asked texts with every
            dataset label's text feature.
        slot_labels: Per unified node, the (global) label columns it maps to.
        active: ``bool[N]`` active nodes.
        tau: Temperature of the share.
    Returns:
        ``float[B, K, h, w]`` log-probabilities.
    """
    best = torch.full((len(slot_labels), len(text)), -2.0, device=text.device)
    for r, cols in enumerate(slot_labels):
        for c in cols:
            best[r] = torch.maximum(best[r], label_similarity[:, c])
    share = torch.softmax(best / tau, dim=1)  # p(k | r)
    share = share * active.to(share.dtype)[:, None]
    probs = torch.einsum("bnhw,nk->bkhw", torch.softmax(unified, dim=1), share)
    return torch.log(probs.clamp(min=1e-30))


@dataclass
class UnifyOutput(PixelOutput):
    """The pixel embeddings, plus what the loss needs from the recipe's own parameters in
    training: computed in ``forward`` so that DistributedDataParallel finds every parameter a
    step uses.

    Attributes:
        scale: 0-d ``1 / tau`` of the head (None in eval mode).
        graph: The label graph's output in the segmentation and graph phases (None in the
            warm-up and in eval mode).
    """

    scale: torch.Tensor | None = None
    graph: GraphOutput | None = None
