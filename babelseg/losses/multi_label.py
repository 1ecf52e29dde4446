"""MS3's cross-modal multi-label extension (eq. 5-8) of the pixel-embedding pairing loss.

- eq. 5: ``S[y, y'] = mean over pixels k of class y of F_k . T_y'`` -- with unit-norm pixel
  embeddings this is ``mean_k(F_k) . T_y'``, so class means of pixel embeddings suffice;
- eq. 6: class y of dataset i also gets every class y' of the *other* datasets (``y' not in Y_i``)
  with ``S[y, y'] >= S[y, y]`` as a positive; ``S`` is not symmetric, so relations may be one-way
  (a subset class is pulled to its superset, not the other way round);
- eq. 7-8: ``-log((exp(s_y) + sum_{k positive} exp(s_k)) / sum_k exp(s_k))``, i.e. the
  log-sum-exp over all classes minus the log-sum-exp over the positives. With only the own class
  positive it is eq. 1-2, the ordinary cross-entropy.

Our additions (the paper gives no schedule; these are settings of ``recipe.ms3``, not its values):
the extra positives enter the numerator with a weight w in [0, 1] that ramps up after a delay
(:func:`extra_positive_weight`; w = 1 is eq. 7-8, w = 0 is eq. 1-2), and each class keeps at most
``max_extra`` extra positives, the most similar ones (:func:`multi_label_targets`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def class_text_similarity(class_means: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Eq. 5.

    Args:
        class_means: ``float[K, D]`` mean of the unit-norm pixel embeddings of each class.
        text: ``float[K, D]`` text embeddings of the same K union classes.
    Returns:
        ``float[K, K]``: ``S[y, y']``.
    """
    return class_means @ F.normalize(text.to(class_means.dtype), dim=1).T


def multi_label_targets(
    similarity: torch.Tensor,
    classes: torch.Tensor,
    *,
    valid: torch.Tensor | None = None,
    max_extra: int | None = None,
    recognised_only: bool = False,
) -> torch.Tensor:
    """Eq. 6 for one dataset: the positives of each of its classes in the union label space.

    Args:
        similarity: ``float[K, K]`` the ``S`` of eq. 5 over the union label space.
        classes: ``int64[K_d]`` union index of each class of the dataset (its label space Y_i).
        valid: ``bool[K]`` classes whose row of ``S`` is measured (others get no extra
            positives); None = all.
        max_extra: At most this many extra positives per class, those with the highest ``S``
            (ties: the lower index); None = no cap (eq. 6 as written).
        recognised_only: Only classes whose pixels are nearest their own text among the
            dataset's classes (``S[y, y] = max over y'' in Y_i of S[y, y'']``) get extra positives
            (our addition, not the paper's: eq. 6 presumes a network that already separates a
            dataset's own classes; before it does, a class's pixels sit nearest the text of a
            frequent class such as road, and eq. 6 would make that class a positive).
    Returns:
        ``bool[K_d, K]``: row c is True at ``classes[c]`` and at the classes of other datasets
        scoring at least as high as ``classes[c]`` itself.
    """
    k = similarity.shape[0]
    rows = similarity[classes]  # [K_d, K]
    own = rows.gather(1, classes[:, None])  # [K_d, 1]
    others = torch.ones(k, dtype=torch.bool, device=similarity.device)
    others[classes] = False
    extra = (rows >= own) & others[None]
    if valid is not None:
        extra &= valid[classes][:, None]
    if recognised_only:
        inside = rows.index_select(1, classes)  # [K_d, K_d]; ties count as recognised
        extra &= own >= inside.max(1, keepdim=True).values
    if max_extra is not None:
        if max_extra < 0:
            raise ValueError(f"recipe.ms3.multi_label_max_extra must be >= 0, got {max_extra}.")
        keep = min(max_extra, k)
        scores = rows.masked_fill(~extra, float("-inf"))
        top = torch.zeros_like(extra)
        if keep > 0:
            index = torch.topk(scores, keep, dim=1, sorted=True).indices
            top.scatter_(1, index, True)
        extra &= top
    targets = F.one_hot(classes, k).bool()
    return targets | extra


def multi_positive_cross_entropy_sum(
    logits: torch.Tensor, positives: torch.Tensor, *, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """Eq. 7-8 summed over rows.

    Args:
        logits: ``float[N, K]`` scaled similarities ``I_i . T_k / tau``.
        positives: ``bool[N, K]`` positive classes per row (at least one, or the row is skipped).
        allowed: ``bool[K]`` classes that exist (e.g. visual embeddings of empty memory-bank
            classes do not); others leave numerator and denominator. None = all.
    Returns:
        0-d sum of ``logsumexp(all) - logsumexp(positives)`` over rows with a positive.
    """
    logits = logits.float()
    if allowed is not None:
        logits = logits.masked_fill(~allowed[None], float("-inf"))
        positives = positives & allowed[None]
    has = positives.any(1)
    if not bool(has.any()):
        return logits.new_zeros(()) + 0.0 * logits.masked_fill(~torch.isfinite(logits), 0).sum()
    logits, positives = logits[has], positives[has]
    pos = torch.logsumexp(logits.masked_fill(~positives, float("-inf")), dim=1)
    return (torch.logsumexp(logits, dim=1) - pos).sum()


def extra_positive_weight(step: int, *, start: int, ramp: int) -> float:
    """Weight w of the extra positives at training step ``step`` (from 0): 0 before ``start``,
    then rising linearly to 1 over ``ramp`` steps (``(step - start + 1) / ramp``); 1 from
    ``start`` on when ``ramp`` is 0."""
    if step < start:
        return 0.0
    if ramp <= 0:
        return 1.0
    return min(1.0, (step - start + 1) / ramp)


def weighted_multi_positive_cross_entropy_sum(
    logits: torch.Tensor,
    own: torch.Tensor,
    extra: torch.Tensor | None,
    *,
    extra_weight: float,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 7-8 with the extra positives weighted, summed over rows:
    ``-log((exp(s_own) + w sum_{k extra} exp(s_k)) / sum_k exp(s_k))``.

    Args:
        logits: ``float[N, K]`` scaled similarities.
        own: ``int64[N]`` each row's own class.
        extra: ``bool[N, K]`` extra positives (the own class is ignored there); None = none.
        extra_weight: w in [0, 1]; 0 is eq. 1-2, 1 is eq. 7-8.
        allowed: ``bool[K]`` classes that exist (others leave numerator and denominator; rows
            whose own class is not allowed are skipped). None = all.
    Returns:
        0-d sum over the rows.
    """
    logits = logits.float()
    if allowed is not None:
        logits = logits.masked_fill(~allowed[None], float("-inf"))
        rows = allowed[own]
        if not bool(rows.any()):
            return logits.new_zeros(()) + 0.0 * logits.masked_fill(~torch.isfinite(logits), 0).sum()
        logits, own = logits[rows], own[rows]
        extra = None if extra is None else (extra & allowed[None])[rows]
    own_hot = None
    if extra is not None and extra_weight > 0:
        own_hot = torch.nn.functional.one_hot(own, logits.shape[1]).bool()
        extra = extra & ~own_hot
    if own_hot is None or not bool(extra.any()):
        numerator = logits.gather(1, own[:, None]).squeeze(1)
    else:
        log_w = torch.full_like(logits, float("-inf"))
        log_w = log_w.masked_fill(own_hot, 0.0).masked_fill(extra, math.log(extra_weight))
        numerator = torch.logsumexp(logits + log_w, dim=1)
    return (torch.logsumexp(logits, dim=1) - numerator).sum()


def positive_pairs(
    positives: dict[str, torch.Tensor], dataset_classes: dict[str, list[int]]
) -> list[list]:
    """The extra positives of eq. 6 as label pairs (MS3.txt Table 8: "pixels of the former class
    are mapped to the embedding of the latter").

    Args:
        positives: ``{dataset: bool[K_d, K]}`` from :func:`multi_label_targets`.
        dataset_classes: ``{dataset: [union index of each of its classes]}``.
    Returns:
        ``[[dataset, label index, other dataset, other label index], ...]``: every label of the
        other datasets whose union class is an extra positive of the label (own class left out).
    """
    labels_of: dict[int, list[tuple[str, int]]] = {}
    for name, classes in dataset_classes.items():
        for label, union in enumerate(classes):
            labels_of.setdefault(int(union), []).append((name, label))
    out = []
    for name, rows in positives.items():
        own = dataset_classes[name]
        for label, row in enumerate(rows.detach().cpu().tolist()):
            for union, positive in enumerate(row):
                if positive and union != own[label]:
                    out += [[name, label, o, c] for o, c in labels_of.get(union, []) if o != name]
    return out
