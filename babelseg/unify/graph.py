"""The label graph network of AutoUniSeg (section 3.2, eq. 1-3).

Nodes: one per dataset label (its text feature plus a learnable embedding of its dataset, eq. 1)
and N learnable unified nodes. Edges: a learnable adjacency between unified and dataset-label
nodes only, softmax-normalised over each dataset's labels for every unified node (eq. 2). Dense
GraphSAGE layers ``X_{k+1} = tanh(W_k [X_k || M X_k])`` (eq. 3); the unified nodes' outputs of
the last layer are the unified label embeddings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

INITIAL_EDGE_LOGIT = 5.0
"""Scaled adjacency logit of the edges the cross-dataset validation maps (others start at 0)."""


@dataclass
class GraphOutput:
    """What the label graph gives the segmentation head.

    Attributes:
        unified: ``float[N, D]`` unified label embeddings (last layer, unified nodes).
        adjacency: ``float[N, L]`` continuous adjacency: each row sums to 1 over every dataset's
            labels (so to the number of datasets over all L labels); rows of inactive nodes are 0.
    """

    unified: torch.Tensor
    adjacency: torch.Tensor


class LabelGraph(nn.Module):
    """Dataset-label nodes + unified nodes + learnable adjacency + dense GraphSAGE.

    Args:
        label_features: ``float[L, D]`` text features of every training dataset's labels,
            datasets concatenated in order.
        label_dataset: ``int64[L]`` index of each label's dataset (0..K-1, non-decreasing).
        num_unified: N, unified nodes (slots; inactive ones are masked by the caller).
        num_layers: GraphSAGE layers (>= 1).
        adjacency_scale: Multiplier of the adjacency logits (a larger value lets AdamW move the
            edges faster at the run's learning rate).
    """

    def __init__(
        self,
        *,
        label_features: torch.Tensor,
        label_dataset: torch.Tensor,
        num_unified: int,
        num_layers: int = 2,
        adjacency_scale: float = 10.0,
    ) -> None:
        super().__init__()
        if num_unified < 1:
            raise ValueError(f"num_unified must be >= 1, got {num_unified}.")
        if num_layers < 1:
            raise ValueError(f"graph_layers must be >= 1, got {num_layers}.")
        if label_features.ndim != 2 or len(label_features) != len(label_dataset):
            raise ValueError(
                f"label_features {tuple(label_features.shape)} and label_dataset "
                f"{tuple(label_dataset.shape)} must describe the same L labels."
            )
        num_labels, dim = label_features.shape
        num_datasets = int(label_dataset.max()) + 1
        self.num_labels, self.num_unified, self.dim = num_labels, num_unified, dim
        self.num_datasets = num_datasets
        self.adjacency_scale = adjacency_scale
        self.register_buffer("label_features", label_features.detach().float().clone())
        self.register_buffer("label_dataset", label_dataset.detach().long().clone())
        self.dataset_embedding = nn.Parameter(torch.zeros(num_datasets, dim))
        self.unified_features = nn.Parameter(torch.randn(num_unified, dim) * 0.01)
        self.edge_logits = nn.Parameter(torch.zeros(num_unified, num_labels))
        self.layers = nn.ModuleList(nn.Linear(2 * dim, dim) for _ in range(num_layers))
        with torch.no_grad():  # start near "self + mean of neighbours" so texts flow through
            eye = torch.eye(dim)
            for layer in self.layers:
                layer.weight.copy_(torch.cat([eye, eye], 1) + 0.01 * torch.randn(dim, 2 * dim))
                layer.bias.zero_()

    def dataset_slices(self) -> list[slice]:
        """The column range of each dataset's labels in ``[0, L)``."""
        counts = torch.bincount(self.label_dataset, minlength=self.num_datasets).tolist()
        out, start = [], 0
        for c in counts:
            out.append(slice(start, start + c))
            start += c
        return out

    def adjacency(self, active: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. 2: ``float[N, L]``, softmax over each dataset's labels per unified node.

        Args:
            active: ``bool[N]``; rows of inactive nodes are zero.
        """
        logits = self.edge_logits * self.adjacency_scale
        parts = [torch.softmax(logits[:, s], dim=1) for s in self.dataset_slices()]
        adj = torch.cat(parts, dim=1)
        if active is not None:
            adj = adj * active.to(adj.dtype)[:, None]
        return adj

    def forward(self, active: torch.Tensor | None = None) -> GraphOutput:
        """Run the GraphSAGE layers (eq. 3) over the L + N nodes.

        Args:
            active: ``bool[N]`` unified nodes in use (None = all).
        Returns:
            :class:`GraphOutput` with ``unified float[N, D]`` and ``adjacency float[N, L]``.
        """
        adj = self.adjacency(active)
        labels = self.label_features + self.dataset_embedding[self.label_dataset]  # eq. 1
        x = torch.cat([labels, self.unified_features], dim=0)  # [L + N, D]
        n_lab = self.num_labels
        # M_a: unified rows aggregate their dataset-label neighbours (mean over the K datasets);
        # label rows have no learnable edges (eq. 2: zero outside the unified-label block)
        m_unified = adj / self.num_datasets  # [N, L]
        for layer in self.layers:
            agg = torch.cat([x.new_zeros(n_lab, x.shape[1]), m_unified @ x[:n_lab]], dim=0)
            x = torch.tanh(layer(torch.cat([x, agg], dim=1)))
        return GraphOutput(unified=x[n_lab:], adjacency=adj)

    @torch.no_grad()
    def initialise(
        self, *, edge_logits: torch.Tensor, unified_features: torch.Tensor | None = None
    ) -> None:
        """Set the adjacency logits ``float[N, L]`` (before ``adjacency_scale``) and, optionally,
        the unified nodes' input features ``float[N, D]`` (e.g. from cross-dataset validation)."""
        self.edge_logits.copy_(edge_logits.to(self.edge_logits))
        if unified_features is not None:
            self.unified_features.copy_(unified_features.to(self.unified_features))

    def initialise_from_classes(
        self, classes: Sequence[Mapping[str, int | None]], offsets: Mapping[str, int]
    ) -> None:
        """Node ``r`` starts as class ``classes[r]`` (``{dataset: label or None}``, e.g. from
        cross-dataset validation): its edges to those labels (column ``offsets[dataset] +
        label``) start at :data:`INITIAL_EDGE_LOGIT`, its features at their mean text feature;
        the other nodes keep their features and every other edge starts at 0."""
        logits = torch.zeros(self.num_unified, self.num_labels)
        feats = self.unified_features.detach().clone()
        for r, mapping in enumerate(classes):
            cols = [int(offsets[d]) + c for d, c in mapping.items() if c is not None]
            # a mapped edge starts e^5 (~150) times as heavy as any other edge of its dataset,
            # whatever adjacency_scale (which sets how fast the graph phases move the edges)
            logits[r, cols] = INITIAL_EDGE_LOGIT / self.adjacency_scale
            feats[r] = self.label_features[cols].mean(0)
        self.initialise(edge_logits=logits, unified_features=feats)
