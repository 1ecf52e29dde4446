"""Mislabelling checks: does a split's on-disk value histogram fit the declared label space?

An off-by-one between the files and the label space trains a wrong model without any error (road
learnt as ceiling). These checks look for its fingerprints and name the option that fixes it:

* **reduce_zero_label on a 1-based space** (:func:`declaration_problems`): the option shifts every
  value down by one, but the space's classes already start at 1 (e.g. card ``ade20k-150``), so the
  first class becomes "ignore" and every other class its neighbour.
* **0 and 255 both "no label"** : a dataset marks unlabelled pixels with one of the two; when both
  carry pixels and both are ignore values, 0 is a class (labels stored as class indices 0..K-1
  with 255 ignore, e.g. ADE20K ``annotations_detectron2``).
* **an ignore value carrying most pixels**: a background/other class the space does not have.
* **values outside the space**: listed by ``datasets check``; here the shift that would explain
  them (``reduce_zero_label: true`` or ``values: index``) is named.

Option ``confirmed_ignore: [values]`` says those ignore values really are unlabelled pixels (e.g.
coarse annotations that are mostly unlabelled), which silences the two ignore-value checks.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from babelseg.labels.space import IGNORE_INDEX, LabelSpace

MOSTLY = 0.5  # share of a split's pixels above which an ignore value "carries most pixels"


def _class_values(space: LabelSpace) -> np.ndarray:
    return np.array([space.value_of(i) for i in range(len(space))], dtype=np.int64)


def declaration_problems(space: LabelSpace, options: Mapping[str, object]) -> list[str]:
    """Problems of the declaration alone (no files read): reduce_zero_label on a 1-based space."""
    values = _class_values(space)
    if options.get("reduce_zero_label", False) and values.min() >= 1:
        return [
            f"Option reduce_zero_label shifts every on-disk value down by one, but label space "
            f"'{space.name}' already has its classes at the on-disk values {int(values.min())}.."
            f"{int(values.max())} (a card like ade20k-150 reads the files as they are): with both, "
            f"the first class is ignored and every other class is learnt as its neighbour. "
            "Remove reduce_zero_label."
        ]
    return []


def _confirmed(options: Mapping[str, object]) -> set[int]:
    raw = options.get("confirmed_ignore") or []
    if not isinstance(raw, (list, tuple)):
        raise ValueError("Option confirmed_ignore must be a list of on-disk values.")
    return {int(v) for v in raw}


def _shift_hint(
    present: np.ndarray, space: LabelSpace, options: Mapping[str, object], known: np.ndarray
) -> str | None:
    """The option that would make every present value known, if a one-value shift does."""
    k = len(space)
    index_ok = np.isin(present, np.r_[np.arange(k), IGNORE_INDEX]).all()
    if index_ok and not np.array_equal(_class_values(space), np.arange(k)):
        return (
            f"every value present is a class index 0..{k - 1} or 255: the labels look like class "
            "indices with 255 ignore, so declare that layout (`values: index` on a built-in card, "
            "or class values 0..K-1 in the label YAML)"
        )
    if not options.get("reduce_zero_label", False):
        shifted = present[(present > 0) & (present != IGNORE_INDEX)] - 1
        if shifted.size and known[shifted].all():
            return (
                "every value present fits the label space after subtracting one (0 = unlabelled): "
                "set reduce_zero_label: true"
            )
    return None


def histogram_problems(
    hist: np.ndarray,
    *,
    table: np.ndarray,
    known: np.ndarray,
    space: LabelSpace,
    options: Mapping[str, object],
    where: str,
) -> list[str]:
    """Mislabelling fingerprints in the on-disk value histogram of one split.

    Args:
        hist: ``int64[65536]`` pixels per raw on-disk value.
        table: ``int64[65536]`` class index per raw value (``IGNORE_INDEX``: ignore or unknown).
        known: ``bool[65536]`` True where the raw value is a class or an ignore value.
        space: The dataset's label space.
        options: The declaration's options.
        where: Dataset and split, for the messages.
    Returns:
        One line per problem, each naming the option to set.
    """
    total = int(hist.sum())
    if total == 0:
        return []
    problems = []
    confirmed = _confirmed(options)
    ignored = known & (table == IGNORE_INDEX) & (hist > 0)
    if ignored[0] and ignored[IGNORE_INDEX] and not {0, IGNORE_INDEX} <= confirmed:
        problems.append(
            f"{where}: on-disk values 0 ({int(hist[0])} px) and 255 ({int(hist[IGNORE_INDEX])} px) "
            f"both mean 'no label' for label space '{space.name}', but a dataset marks unlabelled "
            "pixels with one of them, so 0 is most likely a class: the labels look like class "
            "indices 0..K-1 with 255 ignore (e.g. ADE20K's annotations_detectron2). Set "
            "`values: index` on the card (or give the first class the value 0 in the label YAML) "
            "and remove reduce_zero_label; if both really are unlabelled, set the option "
            "confirmed_ignore: [0, 255]."
        )
    for v in np.flatnonzero(ignored):
        share = hist[v] / total
        if share > MOSTLY and int(v) not in confirmed:
            problems.append(
                f"{where}: the ignore value {int(v)} carries {share:.0%} of all pixels. If it is a "
                "background/other class, give it a class (a class with that value in the label "
                f"YAML, or id_map {{{int(v)}: CLASS}}); if the labels really are mostly "
                f"unlabelled, set the option confirmed_ignore: [{int(v)}]."
            )
    unknown = np.flatnonzero((hist > 0) & ~known)
    if unknown.size:
        hint = _shift_hint(np.flatnonzero(hist), space, options, known)
        if hint is not None:
            problems.append(
                f"{where}: {unknown.size} on-disk values are outside label space '{space.name}' "
                f"(e.g. {unknown[:5].tolist()}); {hint}."
            )
    return problems
