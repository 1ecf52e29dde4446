"""The label graph network: per-dataset softmax adjacency (eq. 2) and dense GraphSAGE (eq. 3)."""

import math

import torch

from babelseg.unify.graph import LabelGraph


def _graph(num_layers=1):
    # dataset 0 has 2 labels, dataset 1 has 1 label; 2 unified nodes; D = 2
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    owner = torch.tensor([0, 0, 1])
    return LabelGraph(
        label_features=feats,
        label_dataset=owner,
        num_unified=2,
        num_layers=num_layers,
        adjacency_scale=1.0,
    )


def test_adjacency_is_a_softmax_per_dataset_and_zero_for_inactive_nodes():
    g = _graph()
    g.initialise(edge_logits=torch.tensor([[math.log(3.0), 0.0, 0.0], [0.0, 0.0, 5.0]]))
    adj = g.adjacency()
    # row 0: dataset 0 -> softmax(ln 3, 0) = (3/4, 1/4); dataset 1 has one label -> 1
    assert torch.allclose(adj[0], torch.tensor([0.75, 0.25, 1.0]))
    assert torch.allclose(adj[1], torch.tensor([0.5, 0.5, 1.0]))
    adj = g.adjacency(torch.tensor([True, False]))
    assert torch.allclose(adj[1], torch.zeros(3))
    assert [s.start for s in g.dataset_slices()] == [0, 2]


def test_one_sage_layer_by_hand():
    g = _graph(num_layers=1)
    with torch.no_grad():
        g.layers[0].weight.copy_(torch.cat([torch.eye(2), torch.eye(2)], 1))  # W = [I | I]
        g.layers[0].bias.zero_()
        g.dataset_embedding.copy_(torch.tensor([[0.1, 0.0], [0.0, -0.1]]))
    u0 = torch.tensor([0.2, -0.2])
    g.initialise(
        edge_logits=torch.tensor([[math.log(3.0), 0.0, 0.0], [0.0, 0.0, 0.0]]),
        unified_features=torch.stack([u0, torch.zeros(2)]),
    )
    out = g()
    # label inputs (eq. 1): [1.1, 0], [0.1, 1], [0.5, 0.4]
    # unified 0 aggregates (3/4 [1.1, 0] + 1/4 [0.1, 1] + 1 [0.5, 0.4]) / 2 datasets
    agg = (
        0.75 * torch.tensor([1.1, 0.0]) + 0.25 * torch.tensor([0.1, 1.0]) + torch.tensor([0.5, 0.4])
    ) / 2
    assert torch.allclose(out.unified[0], torch.tanh(u0 + agg), atol=1e-6)
    assert out.unified.shape == (2, 2) and out.adjacency.shape == (2, 3)


def test_gradients_reach_edges_dataset_embeddings_and_unified_features():
    torch.manual_seed(0)
    g = _graph(num_layers=2)
    out = g()
    (out.unified**2).sum().backward()
    assert g.edge_logits.grad is not None and g.edge_logits.grad[:, :2].abs().sum() > 0
    assert g.dataset_embedding.grad.abs().sum() > 0
    assert g.unified_features.grad.abs().sum() > 0
