"""Boolean dataset-label mappings from the continuous adjacency by unbalanced optimal transport.

AutoUniSeg section 3.1: ``M_i in {0, 1}^{N x |L_i|}``; a unified class maps to at most one label of
dataset i (``M_i 1 <= 1``) and a label may gather several unified classes (granularity). A unified
class whose edges to dataset i show no preference maps to none of its labels (a class dataset i
leaves unlabelled). Mass is moved by POT's KL-relaxed Sinkhorn (``ot.unbalanced``): every unified
node offers mass 1, every label asks for its soft number of children (at least 1); the
relaxation on the unified side lets nodes keep their mass (map to nothing), the one on the label
side lets a label gather more or fewer children than asked.
"""

from __future__ import annotations

import numpy as np
import ot

NO_LABEL = -1
"""The label index of a unified class that maps to nothing in a dataset."""


def transport_plan(
    adjacency: np.ndarray,
    *,
    reg: float = 0.25,
    reg_m_unified: float = 0.05,
    reg_m_label: float = 1.0,
) -> np.ndarray:
    """The unbalanced transport plan between unified nodes and one dataset's labels.

    Args:
        adjacency: ``float[N, K]`` edge weights in [0, 1] (a row per unified node).
        reg: Entropic regularisation (the cost is ``-log adjacency``, so the kernel is
            ``adjacency ** (1 / reg)``: smaller = sharper).
        reg_m_unified: KL relaxation of the unified nodes' mass (small = nodes may send little).
        reg_m_label: KL relaxation of the labels' asked mass.
    Returns:
        ``float[N, K]`` plan.
    """
    adj = np.asarray(adjacency, dtype=np.float64)
    cost = -np.log(np.clip(adj, 1e-9, 1.0))
    a = np.ones(adj.shape[0])
    b = np.maximum(adj.sum(0), 1.0)
    plan = ot.unbalanced.sinkhorn_unbalanced(
        a,
        b,
        cost,
        reg,
        (reg_m_unified, reg_m_label),
        method="sinkhorn_stabilized",
        numItermax=2000,
    )
    return np.asarray(plan)


def boolean_mapping(
    adjacency: np.ndarray,
    *,
    active: np.ndarray | None = None,
    min_mass: float = 0.5,
    reg: float = 0.25,
    reg_m_unified: float = 0.05,
    reg_m_label: float = 1.0,
) -> np.ndarray:
    """Each unified node's label in one dataset (or :data:`NO_LABEL`).

    A node takes the label its plan row sends most to when the row sends at least
    ``min_mass``; then every label left without a node takes, by plan weight, a node that maps
    to nothing or whose label keeps another child, so every label can be predicted.

    Args:
        adjacency: ``float[N, K]`` continuous edge weights of one dataset.
        active: ``bool[N]`` nodes that may map (None = all).
        min_mass: Plan mass a node must send to be mapped.
        reg, reg_m_unified, reg_m_label: See :func:`transport_plan`.
    Returns:
        ``int64[N]``: label index per unified node, ``-1`` for none. Equivalent to the boolean
        ``M_i`` of eq. 5 (``M_i[r, c] = assign[r] == c``), whose rows hold at most one 1.
    """
    adj = np.asarray(adjacency, dtype=np.float64)
    n, k = adj.shape
    act = np.ones(n, bool) if active is None else np.asarray(active, bool)
    assign = np.full(n, NO_LABEL, dtype=np.int64)
    rows = np.flatnonzero(act)
    if len(rows) == 0 or k == 0:
        return assign
    plan = np.zeros((n, k))
    plan[rows] = transport_plan(
        adj[rows], reg=reg, reg_m_unified=reg_m_unified, reg_m_label=reg_m_label
    )
    mass = plan.sum(1)
    for r in rows:
        if mass[r] >= min_mass:
            assign[r] = int(plan[r].argmax())
    score = plan + 1e-12 * adj  # break ties by the adjacency where the plan vanishes
    for c in range(k):
        if (assign == c).any():
            continue
        counts = np.bincount(assign[assign >= 0], minlength=k)
        free = [r for r in rows if assign[r] == NO_LABEL or counts[assign[r]] > 1]
        if free:
            assign[max(free, key=lambda r: score[r, c])] = c
    return assign


def mapping_matrix(assign: np.ndarray, num_labels: int) -> np.ndarray:
    """``int64[N]`` assignment -> ``bool[N, K]`` boolean mapping ``M_i``."""
    m = np.zeros((len(assign), num_labels), dtype=bool)
    idx = np.flatnonzero(np.asarray(assign) >= 0)
    m[idx, np.asarray(assign)[idx]] = True
    return m
