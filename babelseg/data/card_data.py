"""The built-in label cards' data files (``babelseg/data/card_files/*.yaml``), one per dataset.

A card file holds ``title``, ``metadata`` (what the dataset ships, if anything), ``ignore_values``
and ``classes``: ``name``, ``value`` (on-disk value), ``is_thing``, ``color`` (RGB, optional) and
``description`` (one sentence written for babelseg, used by the sentence text modes), plus
card-specific keys (``label_id`` for Cityscapes, ``coco_id``/``in_171`` for COCO-Stuff,
``config_name`` for Mapillary). Cards whose classes come from the user's list (ADE20K-847, Pascal
Context 459) have ``classes: []`` and carry the release's canonical names with their
descriptions under ``known_classes`` instead (see :func:`known_descriptions`). Files are read with
``yaml.safe_load`` and cached.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from babelseg.labels.space import IGNORE_INDEX, MAX_DISK_VALUE, ClassDef, LabelSpace

CARD_DIR = Path(__file__).resolve().parent / "card_files"


@functools.cache
def load_card_file(stem: str) -> dict[str, Any]:
    """The parsed card file ``card_files/<stem>.yaml``.

    Raises:
        FileNotFoundError: no such card file (a packaging error).
    """
    path = CARD_DIR / f"{stem}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"Card data file {path} is missing; reinstall babelseg.")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, Mapping) or not isinstance(data.get("classes"), list):
        raise ValueError(f"{path}: a card file needs a 'classes' list.")
    return dict(data)


def class_def(entry: Mapping[str, Any], *, value: int | None = None) -> ClassDef:
    """A ClassDef from a card-file class entry (``value`` overrides the entry's)."""
    color = entry.get("color")
    return ClassDef(
        name=str(entry["name"]),
        description=entry.get("description"),
        is_thing=bool(entry.get("is_thing", False)),
        value=int(entry["value"]) if value is None else int(value),
        color=tuple(int(c) for c in color) if color else None,  # type: ignore[arg-type]
    )


def card_classes(stem: str, *, where: Iterable[bool] | None = None) -> list[ClassDef]:
    """The classes of card file ``stem`` (optionally only those where ``where`` is True)."""
    entries = load_card_file(stem)["classes"]
    keep = list(where) if where is not None else [True] * len(entries)
    return [class_def(e) for e, k in zip(entries, keep) if k]


def descriptions(*stems: str) -> dict[str, str]:
    """``{class name: description}`` over the given card files (first file wins)."""
    out: dict[str, str] = {}
    for stem in stems:
        for e in load_card_file(stem)["classes"]:
            if e.get("description"):
                out.setdefault(str(e["name"]), str(e["description"]))
    return out


def class_name_key(name: str) -> str:
    """A class name as compared with canonical names: lower case, single spaces, and synonyms
    separated by ", " (``"Building,edifice"`` and ``"building, edifice"`` are the same key)."""
    synonyms = (" ".join(part.split()) for part in name.lower().split(","))
    return ", ".join(s for s in synonyms if s)


@dataclass(frozen=True)
class KnownDescriptions:
    """The descriptions of a card's canonical class names (its ``known_classes``).

    Attributes:
        by_key: ``{class_name_key(canonical name): description}``.
        by_first_synonym: ``{first synonym: description}`` for first synonyms that start exactly
            one canonical name (``"building"`` -> ``"building, edifice"``); ambiguous ones
            (``"screen"`` starts three ADE20K-847 names) are left out.
    """

    by_key: Mapping[str, str]
    by_first_synonym: Mapping[str, str]

    def get(self, name: str) -> str | None:
        """The description for a user's class name: an exact match of the normalised name
        first, else a match of the whole name with a canonical name's unique first synonym;
        None when neither matches."""
        key = class_name_key(name)
        found = self.by_key.get(key)
        return found if found is not None else self.by_first_synonym.get(key)


@functools.cache
def known_descriptions(stem: str) -> KnownDescriptions:
    """The descriptions of the ``known_classes`` of card file ``stem`` (empty if it has none)."""
    entries = load_card_file(stem).get("known_classes") or []
    by_key = {class_name_key(str(e["name"])): str(e["description"]) for e in entries}
    firsts = Counter(key.split(", ")[0] for key in by_key)
    by_first = {
        key.split(", ")[0]: desc for key, desc in by_key.items() if firsts[key.split(", ")[0]] == 1
    }
    return KnownDescriptions(by_key=by_key, by_first_synonym=by_first)


def index_values(classes: list[ClassDef]) -> tuple[list[ClassDef], tuple[int, ...]]:
    """The classes re-valued to their index 0..K-1, and the matching ignore value.

    The layout detectron2 and mmsegmentation's converters write: value = class index, 255 ignore
    (65535 when 255 is a class index).
    """
    out = [
        ClassDef(
            name=c.name, description=c.description, is_thing=c.is_thing, value=i, color=c.color
        )
        for i, c in enumerate(classes)
    ]
    ignore = (IGNORE_INDEX,) if len(out) <= IGNORE_INDEX else (MAX_DISK_VALUE,)
    return out, ignore


def space_with_layout(
    classes: list[ClassDef], ignore: tuple[int, ...], *, layout: str, name: str, where: str
) -> LabelSpace:
    """The label space for ``values: disk`` (the dataset's own values) or ``values: index``."""
    if layout == "index":
        classes, ignore = index_values(classes)
    elif layout != "disk":
        raise ValueError(
            f"{where}: `values: {layout}` is not valid; use `values: disk` (the dataset's own "
            "on-disk values, the default) or `values: index` (value = class index 0..K-1 with 255 "
            "ignore, as detectron2 and mmsegmentation's converters write)."
        )
    return LabelSpace(classes, name=name, ignore_values=ignore)
