"""AutoUniSeg's cross-dataset validation: every dataset's classifier labels every other dataset's
images during the warm-up, and the label-to-label associations it gathers decide the initial
unified classes (:mod:`babelseg.unify.node_count`).

Associations are ``{S: {T: float[|L_S| + 1, |L_T|]}}``: row ``s`` of ``assoc[S][T]`` counts the
pixels of ``S``'s images labelled ``s`` that ``T``'s classifier calls each of its labels (argmax
counts, or probability mass in the soft variant); the last row holds the pixels ``S`` leaves
unlabelled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from babelseg.labels.space import IGNORE_INDEX
from babelseg.models.heads.text_classifier import cosine_logits
from babelseg.unify.node_count import initial_unified_classes

Associations = dict[str, dict[str, np.ndarray]]


def empty_associations(sizes: Mapping[str, int]) -> Associations:
    """``{S: {T: zeros[|L_S| + 1, |L_T|]}}`` over the datasets of ``sizes {dataset: K}``."""
    return {b: {a: np.zeros((sizes[b] + 1, sizes[a])) for a in sizes} for b in sizes}


def load_associations(target: Associations, saved: Mapping, sizes: Mapping[str, int]) -> None:
    """Copy saved associations into ``target``; older runs lack the unlabelled row."""
    for b, row in saved.items():
        for a, m in row.items():
            if b in target and a in target[b]:
                m = np.asarray(m, dtype=np.float64)
                if len(m) == sizes[b]:
                    m = np.concatenate([m, np.zeros((1, m.shape[1]))])
                target[b][a] = m


@torch.no_grad()
def accumulate_associations(
    assoc: Associations,
    assoc_soft: Associations,
    emb: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor,
    *,
    source: str,
    texts: Mapping[str, torch.Tensor],
    scale: torch.Tensor,
    sizes: Mapping[str, int],
) -> None:
    """Every dataset's cosine classifier on ``source``'s image pixels.

    Adds to ``assoc[source][name]`` the pixel counts (source's label x the classifier's
    argmax) and to ``assoc_soft[source][name]`` the classifier's probability mass per source
    label; the last row holds the pixels ``source`` leaves unlabelled.

    Args:
        emb: ``float[b, D, h, w]`` pixel embeddings of ``source``'s images.
        target: ``int64[b, H, W]`` their labels (``IGNORE_INDEX`` where unlabelled).
        valid: ``bool[b, H, W]`` real image pixels (False on padding, which is not counted).
        texts: ``{dataset: float[K, D]}`` every dataset's label texts.
        scale: ``1 / tau`` of the classifiers.
        sizes: ``{dataset: K}``.
    """
    gt = torch.where(target == IGNORE_INDEX, sizes[source], target)[valid]
    rows = sizes[source] + 1  # the last row: pixels ``source`` leaves unlabelled
    for name in sizes:
        logits = cosine_logits(emb, texts[name], scale)
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear")
        pred = logits.argmax(1)[valid]
        k = sizes[name]
        counts = torch.bincount(gt * k + pred, minlength=rows * k).reshape(rows, k)
        assoc[source][name] += counts.cpu().numpy()
        probs = torch.softmax(logits, 1).permute(0, 2, 3, 1)[valid]  # [P, k]
        mass = probs.new_zeros(rows, k).index_add_(0, gt, probs)
        assoc_soft[source][name] += mass.double().cpu().numpy()


def sum_over_processes(
    assoc: Associations,
    reduce_sum: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
) -> None:
    """Under torchrun every process saw other images: sum their associations (in place, with
    the trainer's ``reduce_sum``) so every process derives the same unified classes."""
    for row in assoc.values():
        for name, m in row.items():
            total = reduce_sum(torch.from_numpy(m.copy()).to(device))
            row[name] = total.cpu().numpy()


@torch.no_grad()
def text_similarity(
    label_features: torch.Tensor, offsets: Mapping[str, int], sizes: Mapping[str, int]
) -> Associations:
    """``{B: {A: float[|L_B|, |L_A|]}}`` cosine similarity of the label text features
    (``label_features float[L, D]``, dataset ``n`` at rows ``offsets[n]:offsets[n]+sizes[n]``)."""
    feats = F.normalize(label_features, dim=1).cpu()
    part = {n: feats[int(o) : int(o) + sizes[n]] for n, o in offsets.items()}
    return {b: {a: (part[b] @ part[a].t()).numpy() for a in part} for b in part}


class CrossDatasetValidation:
    """The associations gathered during the warm-up and the unified classes they give.

    Args:
        sizes: ``{dataset: K}`` of the training datasets, in order.
    """

    def __init__(self, sizes: Mapping[str, int]) -> None:
        self.sizes = dict(sizes)
        self.assoc = empty_associations(self.sizes)  # argmax counts
        self.assoc_soft = empty_associations(self.sizes)  # probability mass

    def accumulate(
        self,
        emb: torch.Tensor,
        target: torch.Tensor,
        valid: torch.Tensor,
        *,
        source: str,
        texts: Mapping[str, torch.Tensor],
        scale: torch.Tensor,
    ) -> None:
        """:func:`accumulate_associations` into both association tables."""
        accumulate_associations(
            self.assoc,
            self.assoc_soft,
            emb,
            target,
            valid,
            source=source,
            texts=texts,
            scale=scale,
            sizes=self.sizes,
        )

    def unified_classes(
        self,
        *,
        reduce_sum: Callable[[torch.Tensor], torch.Tensor],
        device: torch.device,
        label_features: torch.Tensor,
        offsets: Mapping[str, int],
        thresholds: Mapping[str, float | str],
    ) -> list[dict[str, int | None]]:
        """The initial unified classes (:func:`initial_unified_classes` with ``thresholds``:
        min_share, min_match, min_presence, text_weight, text_floor, merge_rule), after summing the
        associations over processes (``device``: where ``reduce_sum`` works)."""
        for assoc in (self.assoc, self.assoc_soft):
            sum_over_processes(assoc, reduce_sum, device)
        return initial_unified_classes(
            self.assoc,
            list(self.sizes),
            soft=self.assoc_soft,
            text_similarity=text_similarity(label_features, offsets, self.sizes),
            **thresholds,
        )

    def state(self) -> dict:
        """JSON-safe ``{"assoc": ..., "assoc_soft": ...}``."""
        return {
            "assoc": {b: {a: m.tolist() for a, m in r.items()} for b, r in self.assoc.items()},
            "assoc_soft": {
                b: {a: m.tolist() for a, m in r.items()} for b, r in self.assoc_soft.items()
            },
        }

    def load_state(self, state: Mapping) -> None:
        """Restore :meth:`state` (older runs lack the unlabelled row; absent keys: nothing)."""
        load_associations(self.assoc, state.get("assoc", {}), self.sizes)
        load_associations(self.assoc_soft, state.get("assoc_soft", {}), self.sizes)
