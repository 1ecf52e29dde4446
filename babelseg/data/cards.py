"""Built-in label cards: label spaces of well-known datasets, named in datasets.yaml.

Usage in a declaration: ``labels: {card: NAME, ...}``. Cards (``CARDS``, a plain dict):

* ``coco-json``: the ``categories`` of a COCO JSON: name, ``isthing``, value = category id
  (ids keep their gaps). Keys: ``split`` (whose ``json`` to read; default the first split) or
  ``file`` (a JSON relative to the dataset root: a COCO file or a bare category list, e.g.
  ``panoptic_coco_categories.json``). A category without ``isthing`` is a thing for
  ``coco-instances`` data and stuff otherwise. 0 and 255 (unless they are category ids) are
  ignore values, for PNG exports that use them as "no category".
* ``ade20k-150``: the 150 ADE20K SceneParsing classes from ``objectInfo150.csv`` (key ``file``,
  relative to the dataset root, default ``objectInfo150.csv``): the name is the first name
  before ``;`` in the Name column, ``is_thing`` is ``Stuff == 0``. Values are the on-disk values
  1..150 and 0 (and 255) are ignore values, so the label PNGs are read as they are: do **not**
  set ``reduce_zero_label`` with this card. The CSV commonly distributed (CSAIL) replaced the
  spaces of multi-word names by ``;`` too ("screen;door;screen"), which turns "screen door"
  into "screen" (a duplicate of class 131) and "coffee table" into "coffee". Where the first
  token is the first word of the standard name of that index, the standard name is used.
* ``cityscapes``: the 19 Cityscapes evaluation classes. Key ``ids``: ``train`` (default;
  ``*_labelTrainIds.png``: values 0..18, 255 ignore) or ``label`` (``*_labelIds.png`` and the
  panoptic category ids: each class at its labelId; the 15 other ids of the 34-id table and 255
  are ignore values, so they are not reported as unknown).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from babelseg.data.declaration import DatasetDecl
from babelseg.labels.space import IGNORE_INDEX, ClassDef, LabelSpace

# (name, labelId, colour) of the 19 Cityscapes training classes, in trainId order.
CITYSCAPES_CLASSES: tuple[tuple[str, int, tuple[int, int, int]], ...] = (
    ("road", 7, (128, 64, 128)),
    ("sidewalk", 8, (244, 35, 232)),
    ("building", 11, (70, 70, 70)),
    ("wall", 12, (102, 102, 156)),
    ("fence", 13, (190, 153, 153)),
    ("pole", 17, (153, 153, 153)),
    ("traffic light", 19, (250, 170, 30)),
    ("traffic sign", 20, (220, 220, 0)),
    ("vegetation", 21, (107, 142, 35)),
    ("terrain", 22, (152, 251, 152)),
    ("sky", 23, (70, 130, 180)),
    ("person", 24, (220, 20, 60)),
    ("rider", 25, (255, 0, 0)),
    ("car", 26, (0, 0, 142)),
    ("truck", 27, (0, 0, 70)),
    ("bus", 28, (0, 60, 100)),
    ("train", 31, (0, 80, 100)),
    ("motorcycle", 32, (0, 0, 230)),
    ("bicycle", 33, (119, 11, 32)),
)
CITYSCAPES_THINGS = frozenset(
    {"person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"}
)
CITYSCAPES_NUM_LABEL_IDS = 34  # labelIds 0..33

# Standard multi-word names of ADE20K-150 classes (1-based index) whose words the common
# objectInfo150.csv separates with ';' like synonyms.
ADE20K_MULTIWORD_NAMES: dict[int, str] = {
    45: "chest of drawers",
    57: "pool table",
    59: "screen door",
    65: "coffee table",
    74: "kitchen island",
    76: "swivel chair",
    79: "arcade machine",
    90: "television receiver",
    92: "dirt track",
    106: "conveyer belt",
    110: "swimming pool",
    123: "trade name",
    137: "traffic light",
    142: "crt screen",
    145: "bulletin board",
}


def _where(decl: DatasetDecl) -> str:
    return f"{decl.source} (dataset '{decl.name}')"


def _check_keys(spec: Mapping[str, Any], allowed: set[str], decl: DatasetDecl) -> None:
    extra = sorted(set(spec) - allowed - {"card"})
    if extra:
        raise ValueError(
            f"{_where(decl)}: card '{spec['card']}' has unknown keys {extra}; it takes "
            f"{sorted(allowed)}."
        )


def _under_root(decl: DatasetDecl, file: str) -> Path:
    p = Path(file)
    return p if p.is_absolute() else decl.root / p


def coco_json_card(spec: Mapping[str, Any], decl: DatasetDecl) -> LabelSpace:
    """Label space from the ``categories`` of a COCO (instances or panoptic) JSON."""
    from babelseg.data.readers.coco_instances import load_json

    _check_keys(spec, {"split", "file"}, decl)
    if "file" in spec:
        path = _under_root(decl, str(spec["file"]))
    else:
        split = str(spec.get("split", next(iter(decl.splits))))
        paths = decl.split(split)
        if "json" not in paths:
            raise ValueError(
                f"{_where(decl)}: card 'coco-json' needs a COCO JSON but split '{split}' has "
                "none; give `file: path/to/categories.json` in the card."
            )
        path = Path(paths["json"])
    data = load_json(path, "COCO JSON for card 'coco-json'")
    cats = data.get("categories") if isinstance(data, Mapping) else data
    if not isinstance(cats, list) or not cats:
        raise ValueError(f"{path}: no 'categories' list; card 'coco-json' needs one.")
    default_thing = decl.format == "coco-instances"
    classes = []
    for c in cats:
        if not isinstance(c, Mapping) or "id" not in c or "name" not in c:
            raise ValueError(f"{path}: every category needs 'id' and 'name' (got {c!r}).")
        color = c.get("color")
        classes.append(
            ClassDef(
                name=str(c["name"]),
                is_thing=bool(c.get("isthing", default_thing)),
                value=int(c["id"]),
                color=tuple(int(v) for v in color) if color else None,  # type: ignore[arg-type]
            )
        )
    used = {cl.value for cl in classes}
    ignore = tuple(v for v in (0, IGNORE_INDEX) if v not in used)  # "no category" in PNG exports
    return LabelSpace(classes, name=decl.name, ignore_values=ignore)


def ade20k_card(spec: Mapping[str, Any], decl: DatasetDecl) -> LabelSpace:
    """The ADE20K-150 label space from ``objectInfo150.csv`` (values 1..150, 0 ignore)."""
    _check_keys(spec, {"file"}, decl)
    path = _under_root(decl, str(spec.get("file", "objectInfo150.csv")))
    if not path.is_file():
        raise FileNotFoundError(
            f"{_where(decl)}: card 'ade20k-150' reads class names from {path}, which does not "
            "exist. Put objectInfo150.csv (ADE20K SceneParsing) there or set `file:` in the card."
        )
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "Name" not in rows[0] or "Idx" not in rows[0]:
        raise ValueError(f"{path}: expected a CSV with columns Idx and Name (objectInfo150.csv).")
    if sorted(int(r["Idx"]) for r in rows) != list(range(1, 151)):
        raise ValueError(f"{path}: expected the 150 rows Idx 1..150 of ADE20K-150.")
    classes = []
    for r in sorted(rows, key=lambda r: int(r["Idx"])):
        idx = int(r["Idx"])
        name = r["Name"].split(";")[0].strip()
        full = ADE20K_MULTIWORD_NAMES.get(idx)
        if full is not None and full.split()[0] == name:
            name = full
        is_thing = str(r.get("Stuff", "0")).strip() == "0"
        classes.append(ClassDef(name=name, is_thing=is_thing, value=idx))
    return LabelSpace(classes, name=decl.name, ignore_values=(0, IGNORE_INDEX))


def cityscapes_card(spec: Mapping[str, Any], decl: DatasetDecl) -> LabelSpace:
    """The 19 Cityscapes classes at their trainIds (``ids: train``) or labelIds (``ids: label``)."""
    _check_keys(spec, {"ids"}, decl)
    ids = str(spec.get("ids", "train"))
    if ids not in ("train", "label"):
        raise ValueError(
            f"{_where(decl)}: card 'cityscapes' takes `ids: train` (labelTrainIds) or "
            f"`ids: label` (labelIds / panoptic category ids), not '{ids}'."
        )
    classes = [
        ClassDef(
            name=name,
            is_thing=name in CITYSCAPES_THINGS,
            value=train_id if ids == "train" else label_id,
            color=color,
        )
        for train_id, (name, label_id, color) in enumerate(CITYSCAPES_CLASSES)
    ]
    if ids == "train":
        ignore: tuple[int, ...] = (IGNORE_INDEX,)
    else:
        used = {label_id for _, label_id, _ in CITYSCAPES_CLASSES}
        ignore = tuple(v for v in range(CITYSCAPES_NUM_LABEL_IDS) if v not in used)
        ignore += (IGNORE_INDEX,)  # license plate (-1) as stored in 8-bit files
    return LabelSpace(classes, name=decl.name, ignore_values=ignore)


CARDS: dict[str, Callable[[Mapping[str, Any], DatasetDecl], LabelSpace]] = {
    "coco-json": coco_json_card,
    "ade20k-150": ade20k_card,
    "cityscapes": cityscapes_card,
}


def build_card(spec: dict, decl: DatasetDecl) -> LabelSpace:
    """Build the label space a ``{card: NAME, ...}`` entry names.

    Args:
        spec: The ``labels`` mapping of the declaration (``card`` plus the card's keys).
        decl: The declaration (its root and splits locate the card's files).
    Returns:
        The card's label space, named after the dataset.
    Raises:
        ValueError: unknown card (the valid ones are listed) or bad card keys.
        FileNotFoundError: a file the card reads is missing.
    """
    name = spec.get("card")
    if name not in CARDS:
        raise ValueError(
            f"{_where(decl)}: unknown label card '{name}'; valid cards: {sorted(CARDS)}."
        )
    return CARDS[name](spec, decl)
