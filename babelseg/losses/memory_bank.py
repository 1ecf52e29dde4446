"""Per-class FIFO memory bank of pixel embeddings and the class visual embeddings of MS3 eq. 4.

``V_j = sum_i 1[y_i = j] W_ij M_i / sum_i 1[y_i = j]`` over the bank's entries M_i of class j,
with ``W_ij = cos(M_i, V_j^old)`` (the previous visual embedding; 1 while there is none).
Everything is a buffer, so the bank is saved with the weights and a resumed run continues with
exactly the same contents.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def cell_labels(semantic: torch.Tensor, size: tuple[int, int], *, stride: int = 4) -> torch.Tensor:
    """The label at the centre pixel of each ``stride`` cell: ``int64[B, H, W]`` -> ``[B, h, w]``
    (``h, w = size``)."""
    h, w = size
    rows = (torch.arange(h, device=semantic.device) * stride + stride // 2).clamp(
        max=semantic.shape[-2] - 1
    )
    cols = (torch.arange(w, device=semantic.device) * stride + stride // 2).clamp(
        max=semantic.shape[-1] - 1
    )
    return semantic[:, rows][:, :, cols]


def sample_bank_rows(
    embeddings: torch.Tensor,
    semantic: torch.Tensor,
    class_ids: Sequence[Sequence[int]],
    *,
    per_class: int,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``per_class`` random labelled cells per class and image, for the bank.

    Args:
        embeddings: ``float[B, D, h, w]`` (momentum) pixel embeddings at stride 4.
        semantic: ``int64[B, H, W]`` labels in each image's own label space (255 = ignore).
        class_ids: Per image, the bank class of each of its label space's classes.
        per_class: Cells kept per class and image.
        seed: Seed of the generator that picks the cells (a resumed run picks the same).
    Returns:
        ``(float[N, D] unit-norm embeddings, int64[N] bank classes)``.
    """
    labels = cell_labels(semantic, tuple(embeddings.shape[-2:]))
    generator = torch.Generator().manual_seed(seed)
    emb = F.normalize(embeddings.float(), dim=1).permute(0, 2, 3, 1)
    rows, classes = [], []
    for i, ids in enumerate(class_ids):
        lookup = torch.tensor(list(ids) + [-1], device=labels.device)
        local = labels[i].reshape(-1)
        union = lookup[torch.where(local == 255, len(lookup) - 1, local)]
        flat = emb[i].reshape(-1, emb.shape[-1])
        for u in torch.unique(union[union >= 0]).tolist():
            where = torch.nonzero(union == u).squeeze(1)
            order = torch.randperm(len(where), generator=generator)[:per_class]
            pick = where[order.to(where.device)]
            rows.append(flat[pick])
            classes.append(torch.full((len(pick),), u, device=where.device))
    if not rows:
        return emb.new_zeros(0, emb.shape[-1]), torch.zeros(0, dtype=torch.long)
    return torch.cat(rows), torch.cat(classes)


class ClassMemoryBank(nn.Module):
    """``size`` most recent embeddings per class (a ring buffer per class).

    Args:
        num_classes: K.
        size: Entries kept per class (S).
        dim: Embedding dimension D.

    Attributes:
        entries: ``float[K, S, D]`` stored embeddings (unit norm when fed unit-norm vectors).
        count: ``int64[K]`` valid entries per class (at most S).
        pointer: ``int64[K]`` next slot written per class.
        previous: ``float[K, D]`` the last visual embeddings (``V^old``), zero before the first.
    """

    def __init__(self, *, num_classes: int, size: int, dim: int) -> None:
        super().__init__()
        if num_classes < 1 or size < 1 or dim < 1:
            raise ValueError(
                f"ClassMemoryBank needs num_classes, size, dim >= 1, got {num_classes}, {size}, "
                f"{dim} (recipe.ms3.bank_size must be >= 1)."
            )
        self.register_buffer("entries", torch.zeros(num_classes, size, dim))
        self.register_buffer("count", torch.zeros(num_classes, dtype=torch.long))
        self.register_buffer("pointer", torch.zeros(num_classes, dtype=torch.long))
        self.register_buffer("previous", torch.zeros(num_classes, dim))

    @property
    def size(self) -> int:
        return int(self.entries.shape[1])

    @torch.no_grad()
    def enqueue(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """Append embeddings to their classes' queues, overwriting the oldest when full.

        Args:
            embeddings: ``float[N, D]``.
            labels: ``int64[N]`` class of each row, in ``[0, K)``; rows of one class are written
                in order (when more than S arrive, the last S stay).
        """
        for c in torch.unique(labels).tolist():
            rows = embeddings[labels == c][-self.size :].to(self.entries.dtype)
            n = rows.shape[0]
            slots = (self.pointer[c] + torch.arange(n, device=rows.device)) % self.size
            self.entries[c, slots] = rows
            self.pointer[c] = (self.pointer[c] + n) % self.size
            self.count[c] = torch.clamp(self.count[c] + n, max=self.size)

    def valid(self) -> torch.Tensor:
        """``bool[K]``: classes with at least one entry."""
        return self.count > 0

    def _mask(self) -> torch.Tensor:
        """``bool[K, S]``: which slots hold an entry."""
        return torch.arange(self.size, device=self.count.device)[None] < self.count[:, None]

    def class_means(self) -> torch.Tensor:
        """``float[K, D]`` mean entry per class (zero for empty classes)."""
        mask = self._mask().to(self.entries.dtype)
        return (self.entries * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)

    def visual_embeddings(self) -> torch.Tensor:
        """Eq. 4: ``float[K, D]`` similarity-weighted class averages (zero for empty classes).

        The weight of entry i of class j is ``cos(M_i, V_j^old)`` with ``V^old`` = ``previous``;
        classes whose ``previous`` is zero (never computed) weigh every entry 1.
        """
        mask = self._mask().to(self.entries.dtype)
        old = self.previous
        unit = F.normalize(self.entries, dim=-1)
        weights = torch.einsum("ksd,kd->ks", unit, F.normalize(old, dim=-1))
        fresh = old.abs().sum(1) == 0
        weights = torch.where(fresh[:, None], torch.ones_like(weights), weights)
        summed = (self.entries * (weights * mask)[..., None]).sum(1)
        return summed / mask.sum(1, keepdim=True).clamp(min=1)

    @torch.no_grad()
    def remember(self, visual: torch.Tensor) -> None:
        """Store ``visual float[K, D]`` as ``V^old`` for the next :meth:`visual_embeddings`."""
        self.previous.copy_(visual)
