"""A momentum (exponential moving average) copy of a network, as in MoCo and MS3's momentum
image encoder."""

from __future__ import annotations

import copy

import torch
from torch import nn


class MomentumEncoder(nn.Module):
    """A frozen copy of the network, moved towards it by ``p <- m p + (1 - m) p_online``.

    Args:
        model: The online network (copied).
        momentum: m.
    """

    def __init__(self, model: nn.Module, *, momentum: float) -> None:
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"recipe.ms3.momentum must be in [0, 1], got {momentum}.")
        self.model = copy.deepcopy(model).requires_grad_(False)
        self.momentum = momentum

    @torch.no_grad()
    def update(self, online: nn.Module) -> None:
        """One momentum step towards ``online`` (buffers such as norm statistics are copied)."""
        for p, q in zip(self.model.parameters(), online.parameters(), strict=True):
            p.mul_(self.momentum).add_(q.detach(), alpha=1.0 - self.momentum)
        for b, c in zip(self.model.buffers(), online.buffers(), strict=True):
            b.copy_(c)

    @torch.no_grad()
    def forward(self, images: torch.Tensor):
        """``float[B, 3, H, W]`` -> the momentum copy's output for them (no gradient)."""
        return self.model(images)
