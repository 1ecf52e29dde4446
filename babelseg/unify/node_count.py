"""The initial unified classes from cross-dataset validation (AutoUniSeg section 3.2).

After a warm-up in which every dataset has its own classifier, each dataset's classifier labels
the other datasets' images. ``assoc[B][A][b, a]`` counts pixels labelled ``b`` in dataset B's
ground truth that A's classifier calls ``a``. From these label-to-label associations:

1. **Merge** labels of different datasets that are each other's best match in both directions
   (a share of at least ``min_share`` each way), strongest pairs first, never two labels of one
   dataset in a group (as in Zhou et al.'s learned label spaces). Optionally, near-identical
   label texts add a bonus to the share (the graph's input is text features too: small, thin
   classes that a young classifier still confuses with their surroundings match by name). Each
   group is a candidate unified class.
2. **Map** each group to a label of every dataset it has no member in: the label best supported
   both ways (that dataset's classifier gives it the group's pixels, and the group's member
   classifiers find their class in that label's pixels), when the geometric mean of the two
   shares reaches ``min_match``; otherwise to none (a class that dataset leaves unlabelled).
3. **Drop** single-label groups whose label is already gathered by other groups (a coarse label
   such as "background" is a union of other classes, not a class of its own), most-gathered
   first.

The number of groups left is the initial number of unified nodes N; their mappings initialise
the adjacency.
"""

from __future__ import annotations

import numpy as np

Associations = dict[str, dict[str, np.ndarray]]
"""``assoc[B][A]``: ``float[|L_B|, |L_A|]`` pixel counts (GT label of B x prediction of A)."""


def shares(assoc: Associations, source: str, target: str) -> np.ndarray:
    """``P(A's classifier says a | B's label is b)``: ``float[|L_B|, |L_A|]`` (rows sum to 1
    where the label was seen, 0 elsewhere) for ``source`` B and ``target`` A."""
    counts = np.asarray(assoc[source][target], dtype=np.float64)
    total = counts.sum(1, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


def text_bonus(similarity: np.ndarray, *, weight: float, floor: float) -> np.ndarray:
    """``weight * clip((cos - floor) / (1 - floor), 0, 1)``: a bonus for near-identical label
    texts (same name or description), nothing below ``floor``."""
    if weight <= 0:
        return np.zeros_like(similarity)
    return weight * np.clip((np.asarray(similarity) - floor) / (1.0 - floor), 0.0, 1.0)


def merge_groups(
    assoc: Associations,
    datasets: list[str],
    sizes: dict[str, int],
    *,
    min_share: float = 0.3,
    text_similarity: dict[str, dict[str, np.ndarray]] | None = None,
    text_weight: float = 0.0,
    text_floor: float = 0.6,
) -> list[dict[str, int]]:
    """Step 1: groups of mutually best-matching labels, ``[{dataset: label index}]``.

    The match of two labels is the visual share, plus :func:`text_bonus` of their texts'
    cosine similarity when ``text_similarity[B][A]`` (``float[|L_B|, |L_A|]``) is given. Every
    label of every dataset is in exactly one group; groups are ordered by their first label
    (dataset order, then label order).
    """
    pairs = []
    for i, b_name in enumerate(datasets):
        for a_name in datasets[i + 1 :]:
            ab = shares(assoc, b_name, a_name)  # B's labels -> A's predictions
            ba = shares(assoc, a_name, b_name)
            if text_similarity is not None:
                bonus = text_bonus(
                    text_similarity[b_name][a_name], weight=text_weight, floor=text_floor
                )
                ab = np.where(ab.sum(1, keepdims=True) > 0, ab + bonus, 0.0)
                ba = np.where(ba.sum(1, keepdims=True) > 0, ba + bonus.T, 0.0)
            for b in range(sizes[b_name]):
                a = int(ab[b].argmax())
                if ab[b].sum() == 0 or ba[a].sum() == 0 or int(ba[a].argmax()) != b:
                    continue
                strength = min(ab[b, a], ba[a, b])
                if strength >= min_share:
                    pairs.append((-strength, b_name, b, a_name, a))
    parent: dict[tuple[str, int], tuple[str, int]] = {}
    members: dict[tuple[str, int], dict[str, int]] = {}
    for name in datasets:
        for c in range(sizes[name]):
            parent[(name, c)] = (name, c)
            members[(name, c)] = {name: c}

    def root(x: tuple[str, int]) -> tuple[str, int]:
        while parent[x] != x:
            x = parent[x]
        return x

    for _, b_name, b, a_name, a in sorted(pairs):
        rb, ra = root((b_name, b)), root((a_name, a))
        if rb == ra or set(members[rb]) & set(members[ra]):
            continue
        parent[ra] = rb
        members[rb].update(members.pop(ra))
    order = {(n, c): (i, c) for i, n in enumerate(datasets) for c in range(sizes[n])}
    groups = sorted(members.values(), key=lambda g: min(order[(n, c)] for n, c in g.items()))
    return [dict(sorted(g.items(), key=lambda kv: datasets.index(kv[0]))) for g in groups]


def map_groups(
    groups: list[dict[str, int]],
    assoc: Associations,
    datasets: list[str],
    *,
    min_match: float = 0.08,
) -> list[dict[str, int | None]]:
    """Step 2: each group's label in every dataset (``None`` = unlabelled there).

    For a dataset without a member, each label ``a`` scores ``sqrt(forward * reverse)``:
    forward = share of the group's pixels that dataset's classifier calls ``a``; reverse =
    share of ``a``'s pixels that a member's classifier calls the member's label (the class is
    inside ``a``). The best label is taken when it scores at least ``min_match``.
    """
    out = []
    for group in groups:
        mapping: dict[str, int | None] = {}
        for target in datasets:
            if target in group:
                mapping[target] = group[target]
                continue
            forward = np.mean([shares(assoc, s, target)[c] for s, c in group.items()], axis=0)
            reverse = np.max([shares(assoc, target, s)[:, c] for s, c in group.items()], axis=0)
            score = np.sqrt(forward * reverse)
            label = int(score.argmax())
            mapping[target] = label if score[label] >= min_match else None
        out.append(mapping)
    return out


def drop_union_labels(
    groups: list[dict[str, int]], mappings: list[dict[str, int | None]]
) -> list[int]:
    """Step 3: indices of the groups kept.

    A single-label group is dropped while other kept groups map to its label, the label
    gathered by the most groups first (a union of classes), re-counting after each drop (so of
    two single labels that map to each other, one stays).
    """
    keep = list(range(len(groups)))

    def gatherers(g: int) -> int:
        ((name, label),) = groups[g].items()
        return sum(1 for o in keep if o != g and mappings[o].get(name) == label)

    while True:
        singles = [g for g in keep if len(groups[g]) == 1 and gatherers(g) > 0]
        if not singles:
            return keep
        keep.remove(max(singles, key=lambda g: (gatherers(g), -g)))


def initial_unified_classes(
    assoc: Associations,
    datasets: list[str],
    sizes: dict[str, int],
    *,
    min_share: float = 0.3,
    min_match: float = 0.08,
    text_similarity: dict[str, dict[str, np.ndarray]] | None = None,
    text_weight: float = 0.0,
    text_floor: float = 0.6,
) -> list[dict[str, int | None]]:
    """Steps 1-3: the initial unified classes, each as ``{dataset: label index or None}``; their
    number is the initial N. ``text_*``: see :func:`merge_groups`."""
    groups = merge_groups(
        assoc,
        datasets,
        sizes,
        min_share=min_share,
        text_similarity=text_similarity,
        text_weight=text_weight,
        text_floor=text_floor,
    )
    mappings = map_groups(groups, assoc, datasets, min_match=min_match)
    return [mappings[g] for g in drop_union_labels(groups, mappings)]
