"""The initial unified classes from cross-dataset validation (AutoUniSeg section 3.2).

After a warm-up in which every dataset has its own classifier, each dataset's classifier labels
the other datasets' images. ``assoc[S][T]`` holds, on dataset S's images, S's ground truth
(one row per label, plus a last row for the pixels S leaves unlabelled) against T's classifier
(one column per label of T): pixel counts, or probability mass when soft predictions are
accumulated. Two views of "label ``s`` of S lies inside label ``t`` of T" come out of it:

- **recall** ``P(T says t | S's label is s)``: T's classifier, on S's ``s`` pixels;
- **placement** ``P(S's label is s | S's classifier says s', on T's images)`` read the other
  way round: where T's ground truth puts the pixels that S's classifier calls ``s``. Its extra
  outcome "unlabelled in T" is how a class T leaves unlabelled shows itself, and being
  normalised per detection it does not punish a classifier that finds only part of a small,
  thin class.

``containment(s in t)`` is the mean of the two views, each from a different classifier. Then:

1. **Merge** labels of different datasets that contain each other (the smaller of the two
   containments, plus a bonus for near-identical label texts: the graph's input is text
   features too, and a young classifier still confuses small classes with their surroundings)
   when each is the other's best match and the match reaches ``min_share``; strongest pairs
   first, never two labels of one dataset in a group (as in Zhou et al.'s learned label
   spaces). Each group is a candidate unified class.
2. **Map** each group to a label of every dataset it has no member in: the label with the
   largest containment of the group's members, unless that dataset's ground truth leaves more
   of the members' detections unlabelled than it puts in the label (the class is unlabelled
   there), or the containment is below ``min_match``.
3. **Drop** single-label groups whose label is already gathered by other groups (a coarse label
   such as "background" is a union of other classes, not a class of its own), most-gathered
   first.

The number of groups left is the initial number of unified nodes N; their mappings initialise
the adjacency.
"""

from __future__ import annotations

import numpy as np

Associations = dict[str, dict[str, np.ndarray]]
"""``assoc[S][T]``: ``float[|L_S| + 1, |L_T|]`` on S's images: S's label (last row: unlabelled)
x T's prediction."""


def num_labels(assoc: Associations, name: str) -> int:
    """The number of labels of dataset ``name`` (the columns of its own classifier)."""
    return np.asarray(assoc[name][name]).shape[1]


def _normalise(counts: np.ndarray, axis: int) -> np.ndarray:
    total = counts.sum(axis, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


def recall(assoc: Associations, source: str, target: str) -> np.ndarray:
    """``P(target's classifier says t | source's label is s)``: ``float[|L_S|, |L_T|]`` (rows
    sum to 1 where the label was seen, 0 elsewhere)."""
    counts = np.asarray(assoc[source][target], dtype=np.float64)[: num_labels(assoc, source)]
    return _normalise(counts, 1)


def placement(assoc: Associations, images: str, classifier: str) -> np.ndarray:
    """``P(images' label is i | classifier says c, on images' images)``:
    ``float[|L_I| + 1, |L_C|]``, the last row for pixels ``images`` leaves unlabelled (columns
    sum to 1 where the classifier said ``c`` at all, 0 elsewhere)."""
    return _normalise(np.asarray(assoc[images][classifier], dtype=np.float64), 0)


def containment(assoc: Associations, source: str, target: str) -> np.ndarray:
    """``float[|L_S|, |L_T| + 1]``: how much each label ``s`` of ``source`` lies inside each label
    ``t`` of ``target`` (last column: inside what ``target`` leaves unlabelled).

    The mean of recall (target's classifier on source's ``s`` pixels says ``t``) and placement
    (target's ground truth puts source's detections of ``s`` in ``t``); the unlabelled column
    has placement only (a classifier cannot say "unlabelled"). Rows with no evidence are 0.
    """
    rec = recall(assoc, source, target)
    place = placement(assoc, target, source).T  # [|L_S|, |L_T| + 1]
    seen_rec = rec.sum(1, keepdims=True) > 0
    seen_place = place.sum(1, keepdims=True) > 0
    both = np.concatenate([rec, np.zeros((len(rec), 1))], axis=1)
    weight = seen_rec.astype(float) + seen_place.astype(float)
    total = np.where(seen_rec, both, 0.0) + np.where(seen_place, place, 0.0)
    out = np.divide(total, weight, out=np.zeros_like(total), where=weight > 0)
    out[:, -1] = place[:, -1]
    return out


def presence(assoc: Associations, source: str, label: int, target: str) -> float:
    """How often ``source``'s classifier says ``label`` on ``target``'s images, relative to how
    often it says it on ``source``'s own images (0 when it never says it on its own).

    A class that ``target``'s images do not show at all still draws false detections there,
    and those land in whatever label looks alike; a low rate tells them apart from a class
    that is there (labelled or not).
    """
    own = np.asarray(assoc[source][source], dtype=np.float64)
    other = np.asarray(assoc[target][source], dtype=np.float64)
    own_rate = own[:, label].sum() / max(own.sum(), 1e-12)
    if own_rate <= 0:
        return 0.0
    return float(other[:, label].sum() / max(other.sum(), 1e-12) / own_rate)


def text_bonus(similarity: np.ndarray, *, weight: float, floor: float) -> np.ndarray:
    """``weight * clip((cos - floor) / (1 - floor), 0, 1)``: a bonus for near-identical label
    texts (same name or description), nothing below ``floor``."""
    if weight <= 0:
        return np.zeros_like(similarity)
    return weight * np.clip((np.asarray(similarity) - floor) / (1.0 - floor), 0.0, 1.0)


def pair_match(
    assoc: Associations,
    first: str,
    second: str,
    *,
    text_similarity: np.ndarray | None = None,
    text_weight: float = 0.0,
    text_floor: float = 0.6,
) -> tuple[np.ndarray, np.ndarray]:
    """How well each label of ``first`` matches each label of ``second``, seen from each side.

    Returns:
        ``(forward float[|L_F|, |L_S| + 1], backward float[|L_S|, |L_F| + 1])``: containment
        of first's labels in second's (last column: unlabelled in second) and the reverse, plus
        :func:`text_bonus` of ``text_similarity`` (``float[|L_F|, |L_S|]``) on the label columns.
    """
    forward = containment(assoc, first, second)
    backward = containment(assoc, second, first)
    if text_similarity is not None:
        bonus = text_bonus(text_similarity, weight=text_weight, floor=text_floor)
        forward[:, :-1] += np.where(forward.sum(1, keepdims=True) > 0, bonus, 0.0)
        backward[:, :-1] += np.where(backward.sum(1, keepdims=True) > 0, bonus.T, 0.0)
    return forward, backward


def mutual_pairs(forward: np.ndarray, backward: np.ndarray) -> list[tuple[int, int]]:
    """``[(b, a)]``: labels that are each other's best match, neither best matching
    "unlabelled" (the last column). ``forward float[|L_B|, |L_A| + 1]``, ``backward float[|L_A|,
    |L_B| + 1]`` as :func:`pair_match` returns them."""
    out = []
    for b in range(len(forward)):
        a = int(forward[b].argmax())
        if forward[b].sum() == 0 or a == backward.shape[0]:
            continue  # no evidence, or mostly unlabelled in the other dataset
        if backward[a].sum() > 0 and int(backward[a].argmax()) == b:
            out.append((b, a))
    return out


def stable_pairs(forward: np.ndarray, backward: np.ndarray) -> list[tuple[int, int]]:
    """``[(b, a)]``: a stable matching by deferred acceptance (Gale and Shapley), B's labels
    proposing. Each label ranks the other side's labels it prefers to "unlabelled" (the last
    column); a proposal is held while the receiver prefers it to "unlabelled" and to what it
    holds. Every mutual best pair (:func:`mutual_pairs`) is in it; beyond those, a label whose
    best match holds a better partner (a catch-all such as pascal's "background", best match of
    many labels) can pair with its next choice when that choice prefers it. Ties go to the
    lower index. Shapes as :func:`mutual_pairs`."""
    unlabelled_b, unlabelled_a = backward.shape[0], forward.shape[0]
    ranks = {}
    for b in range(len(forward)):
        order = [int(a) for a in np.argsort(-forward[b], kind="stable")]
        ranks[b] = order[: order.index(unlabelled_b)] if forward[b].sum() > 0 else []
    held: dict[int, int] = {}  # a -> b
    tried = dict.fromkeys(ranks, 0)
    free = sorted(b for b, r in ranks.items() if r)
    while free:
        b = free.pop(0)
        if tried[b] >= len(ranks[b]):
            continue
        a = ranks[b][tried[b]]
        tried[b] += 1
        row = backward[a]
        holder = held.get(a)
        better = holder is None or row[b] > row[holder]
        if row.sum() > 0 and row[b] > row[unlabelled_a] and better:
            held[a] = b
            if holder is not None:
                free.append(holder)
        else:
            free.append(b)
    return sorted((b, a) for a, b in held.items())


MERGE_RULES = {"mutual": mutual_pairs, "stable": stable_pairs}
"""``recipe.autounify.merge_rule`` -> the function that pairs two datasets' labels."""


def merge_groups(
    assoc: Associations,
    datasets: list[str],
    *,
    min_share: float = 0.3,
    text_similarity: dict[str, dict[str, np.ndarray]] | None = None,
    text_weight: float = 0.0,
    text_floor: float = 0.6,
    rule: str = "mutual",
) -> list[dict[str, int]]:
    """Step 1: groups of matching labels, ``[{dataset: label index}]``.

    Two labels match (:func:`pair_match`, "unlabelled" included) under ``rule``: ``"mutual"``,
    each is the other's best match (:func:`mutual_pairs`); ``"stable"``, they are paired by
    deferred acceptance (:func:`stable_pairs`); and with a strength ``min(forward, backward)`` of
    at least ``min_share``. Every label of every dataset is in exactly one group; groups are
    ordered by their first label (dataset order, then label order).
    """
    pairs = []
    for i, b_name in enumerate(datasets):
        for a_name in datasets[i + 1 :]:
            texts = None if text_similarity is None else text_similarity[b_name][a_name]
            forward, backward = pair_match(
                assoc,
                b_name,
                a_name,
                text_similarity=texts,
                text_weight=text_weight,
                text_floor=text_floor,
            )
            for b, a in MERGE_RULES[rule](forward, backward):
                strength = min(forward[b, a], backward[a, b])
                if strength >= min_share:
                    pairs.append((-strength, b_name, b, a_name, a))
    parent: dict[tuple[str, int], tuple[str, int]] = {}
    members: dict[tuple[str, int], dict[str, int]] = {}
    for name in datasets:
        for c in range(num_labels(assoc, name)):
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
    order = {(n, c): (i, c) for i, n in enumerate(datasets) for c in range(num_labels(assoc, n))}
    groups = sorted(members.values(), key=lambda g: min(order[(n, c)] for n, c in g.items()))
    return [dict(sorted(g.items(), key=lambda kv: datasets.index(kv[0]))) for g in groups]


def map_groups(
    groups: list[dict[str, int]],
    assoc: Associations,
    datasets: list[str],
    *,
    soft: Associations | None = None,
    min_match: float = 0.3,
    min_presence: float = 0.15,
) -> list[dict[str, int | None]]:
    """Step 2: each group's label in every dataset (``None`` = unlabelled there).

    For a dataset without a member, every label (and "unlabelled") scores the mean, over the
    group's members, of the member label's :func:`containment` in it (from ``soft`` when
    given, else from ``assoc``). A label is a candidate when it outscores "unlabelled" and
    reaches ``min_match``, and the members' classifiers find the class in that dataset's images
    at all (mean :func:`presence` from the hard counts ``assoc`` at least ``min_presence``).

    Candidates are accepted strongest first, unless they contradict an accepted one: labels of
    one dataset are disjoint, so "``s`` lies in ``t``" (group of ``s`` maps to ``t``) and "``t``
    lies in ``s'``" (group of ``t`` maps to another label ``s'`` of ``s``'s dataset) cannot both
    hold. A group whose candidates are all rejected maps to nothing there.
    """
    evidence = assoc if soft is None else soft
    contained = {(s, t): containment(evidence, s, t) for s in datasets for t in datasets if s != t}
    group_of = {(n, c): g for g, group in enumerate(groups) for n, c in group.items()}
    claims = []  # (score, group, target, label)
    for g, group in enumerate(groups):
        for target in datasets:
            if target in group:
                continue
            rows = [contained[(s, target)][c] for s, c in group.items()]
            rows = [r for r in rows if r.sum() > 0]
            if not rows:
                continue
            seen = np.mean([presence(assoc, s, c, target) for s, c in group.items()])
            if seen < min_presence:
                continue
            score = np.mean(rows, axis=0)
            for label in range(len(score) - 1):
                if score[label] >= min_match and score[label] > score[-1]:
                    claims.append((float(score[label]), g, target, label))
    out: list[dict[str, int | None]] = [{n: group.get(n) for n in datasets} for group in groups]

    def contradicts(g: int, target: str, label: int) -> bool:
        # "g lies in (target, label)" against "h, the group of that label, lies in (n, other)";
        # checked for every claim against the accepted ones, this covers both orders
        h = group_of[(target, label)]
        for n, own in groups[g].items():
            other = out[h].get(n)
            if n not in groups[h] and other is not None and other != own:
                return True
        return False

    decided: set[tuple[int, str]] = set()
    for _, g, target, label in sorted(claims, key=lambda c: (-c[0], c[1], c[2], c[3])):
        if (g, target) in decided or contradicts(g, target, label):
            continue
        out[g][target] = label
        decided.add((g, target))
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
    *,
    min_share: float = 0.3,
    min_match: float = 0.3,
    min_presence: float = 0.15,
    soft: Associations | None = None,
    text_similarity: dict[str, dict[str, np.ndarray]] | None = None,
    text_weight: float = 0.0,
    text_floor: float = 0.6,
    merge_rule: str = "mutual",
) -> list[dict[str, int | None]]:
    """Steps 1-3: the initial unified classes, each as ``{dataset: label index or None}``; their
    number is the initial N. ``text_*``, ``merge_rule``: see :func:`merge_groups`."""
    groups = merge_groups(
        assoc if soft is None else soft,
        datasets,
        min_share=min_share,
        text_similarity=text_similarity,
        text_weight=text_weight,
        text_floor=text_floor,
        rule=merge_rule,
    )
    mappings = map_groups(
        groups, assoc, datasets, soft=soft, min_match=min_match, min_presence=min_presence
    )
    return [mappings[g] for g in drop_union_labels(groups, mappings)]
