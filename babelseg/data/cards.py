"""Built-in label cards: label spaces of well-known datasets, named in datasets.yaml.

Usage in a declaration: ``labels: {card: NAME, ...}``. The class lists, colours and one-sentence
descriptions live in ``babelseg/data/card_files/<dataset>.yaml``; where the dataset ships its own
metadata file, the card reads it (key ``file``, relative to the dataset root). Every card whose
dataset uses 1-based or gapped values also takes ``values: disk`` (default: the dataset's own
on-disk values) or ``values: index`` (value = class index 0..K-1 with 255 ignore, the layout
detectron2's and mmsegmentation's converters write, e.g. ADE20K ``annotations_detectron2``).
The README lists every card with the folder layout it expects. ``CARDS`` is a plain dict.

* ``coco-json``: the ``categories`` of a COCO JSON (``split`` or ``file``), value = category id;
  descriptions from the COCO card files when the names match.
* ``coco-panoptic-133``: the 133 COCO panoptic classes (carried), value = category id.
* ``coco-stuff-171`` / ``coco-stuff-182``: COCO-Stuff label PNGs, value = COCO id - 1.
* ``ade20k-150``: names from ``objectInfo150.csv`` or ``.txt``; values 1..150, 0 ignore. Do
  **not** set ``reduce_zero_label`` with it. The CSAIL CSV replaced the spaces of multi-word names
  by ``;`` ("screen;door;screen"); where the first token is the first word of the standard name of
  that index, the standard name is used.
* ``ade20k-847`` / ``pascal-context-459``: names from the user's list (``file``, required);
  names that match the release's canonical names get the carried descriptions.
* ``cityscapes`` (``ids: train`` or ``label``; ``file``: cityscapesScripts' ``labels.py``,
  else the carried table), ``bdd100k``, ``idd``, ``mapillary-v1.2`` /
  ``mapillary-v2.0`` (``config_v*.json`` when present), ``pascal-voc``, ``pascal-context-59``,
  ``sun-rgbd``, ``loveda``, ``camvid``, ``camvid-32`` (colour-coded).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from babelseg.data import card_metadata as meta
from babelseg.data.card_data import (
    card_classes,
    class_def,
    descriptions,
    known_descriptions,
    load_card_file,
    space_with_layout,
)
from babelseg.data.declaration import DatasetDecl
from babelseg.labels.space import IGNORE_INDEX, ClassDef, LabelSpace

CardBuilder = Callable[[Mapping[str, Any], DatasetDecl], LabelSpace]

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
    124: "trade name",
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


def _layout(spec: Mapping[str, Any]) -> str:
    return str(spec.get("values", "disk"))


def _first_existing(decl: DatasetDecl, spec: Mapping[str, Any], defaults: tuple[str, ...]):
    """The card's ``file`` (must exist later), or the first default file that exists, or None."""
    if "file" in spec:
        return _under_root(decl, str(spec["file"]))
    for name in defaults:
        if (decl.root / name).is_file():
            return decl.root / name
    return None


def carried_card(stem: str, spec: Mapping[str, Any], decl: DatasetDecl) -> LabelSpace:
    """A card whose class list is carried in ``card_files/<stem>.yaml``."""
    _check_keys(spec, {"values"}, decl)
    data = load_card_file(stem)
    classes = card_classes(stem)
    ignore = tuple(int(v) for v in data.get("ignore_values", [IGNORE_INDEX]))
    return space_with_layout(
        classes, ignore, layout=_layout(spec), name=decl.name, where=_where(decl)
    )


def coco_json_card(spec: Mapping[str, Any], decl: DatasetDecl) -> LabelSpace:
    """Label space from the ``categories`` of a COCO (instances or panoptic) JSON."""
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
    cats = meta.read_coco_categories(path)
    default_thing = decl.format == "coco-instances"
    known = descriptions("coco-panoptic-133", "coco-stuff")
    classes = []
    for c in cats:
        color = c.get("color")
        classes.append(
            ClassDef(
                name=str(c["name"]),
                description=known.get(str(c["name"])),
                is_thing=bool(c.get("isthing", default_thing)),
                value=int(c["id"]),
                color=tuple(int(v) for v in color) if color else None,  # type: ignore[arg-type]
            )
        )
    used = {cl.value for cl in classes}
    ignore = tuple(v for v in (0, IGNORE_INDEX) if v not in used)  # "no category" in PNG exports
    return LabelSpace(classes, name=decl.name, ignore_values=ignore)


def ade20k_card(spec: Mapping[str, Any], decl: DatasetDecl) -> LabelSpace:
    """ADE20K-150 from ``objectInfo150.csv``/``.txt`` (values 1..150, 0 ignore)."""
    _check_keys(spec, {"file", "values"}, decl)
    path = _first_existing(decl, spec, ("objectInfo150.csv", "objectInfo150.txt"))
    if path is None:
        path = decl.root / "objectInfo150.csv"
    rows = meta.read_ade_object_info(path)
    if sorted(r.value for r in rows) != list(range(1, 151)):
        raise ValueError(f"{path}: expected the 150 rows Idx 1..150 of ADE20K-150.")
    carried = {int(e["value"]): e for e in load_card_file("ade20k-150")["classes"]}
    classes = []
    for r in sorted(rows, key=lambda r: r.value):
        name = r.name
        full = ADE20K_MULTIWORD_NAMES.get(r.value)
        if full is not None and full.split()[0] == name:
            name = full
        standard = carried[r.value]
        same = name == standard["name"]
        classes.append(
            ClassDef(
                name=name,
                description=standard["description"] if same else None,
                is_thing=standard["is_thing"] if r.is_thing is None else r.is_thing,
                value=r.value,
                color=tuple(standard["color"]),  # type: ignore[arg-type]
            )
        )
    return space_with_layout(
        classes, (0, IGNORE_INDEX), layout=_layout(spec), name=decl.name, where=_where(decl)
    )


def name_list_card(stem: str, spec: Mapping[str, Any], decl: DatasetDecl) -> LabelSpace:
    """ADE20K-847 / Pascal Context 459: names (and ids) from the user's list file.

    A name that matches one of the release's canonical names (``known_classes`` of the card file,
    after :func:`~babelseg.data.card_data.class_name_key`; or a canonical name's unique first
    synonym) gets its description; any other name keeps working without one (bare-name text).
    """
    _check_keys(spec, {"file"}, decl)
    if "file" not in spec:
        raise ValueError(
            f"{_where(decl)}: card '{spec['card']}' reads its class names from the dataset's "
            "list; give `file: path/to/names.txt` (one name, or 'id: name', per line)."
        )
    path = _under_root(decl, str(spec["file"]))
    rows = meta.read_name_list(path)
    known = known_descriptions(stem)
    classes = [ClassDef(name=r.name, description=known.get(r.name), value=r.value) for r in rows]
    used = {r.value for r in rows}
    ignore = tuple(int(v) for v in load_card_file(stem)["ignore_values"] if v not in used)
    return LabelSpace(classes, name=decl.name, ignore_values=ignore)


def cityscapes_card(spec: Mapping[str, Any], decl: DatasetDecl) -> LabelSpace:
    """The 19 Cityscapes classes at their trainIds (``ids: train``) or labelIds (``ids: label``)."""
    _check_keys(spec, {"ids", "file"}, decl)
    ids = str(spec.get("ids", "train"))
    if ids not in ("train", "label"):
        raise ValueError(
            f"{_where(decl)}: card 'cityscapes' takes `ids: train` (labelTrainIds) or "
            f"`ids: label` (labelIds / panoptic category ids), not '{ids}'."
        )
    if "file" in spec:
        return _cityscapes_from_table(_under_root(decl, str(spec["file"])), ids, decl)
    data = load_card_file("cityscapes")
    if ids == "train":
        return LabelSpace(card_classes("cityscapes"), name=decl.name, ignore_values=(255,))
    classes = [class_def(e, value=int(e["label_id"])) for e in data["classes"]]
    ignore = tuple(int(e["label_id"]) for e in data["other_label_ids"])
    ignore += (IGNORE_INDEX,)  # license plate (-1) as stored in 8-bit files
    return LabelSpace(classes, name=decl.name, ignore_values=ignore)


def _cityscapes_from_table(path: Path, ids: str, decl: DatasetDecl) -> LabelSpace:
    """The Cityscapes classes of a ``labels.py`` table: trainIds other than 255/-1."""
    rows = meta.read_cityscapes_labels(path)
    known = descriptions("cityscapes")
    train = sorted((r for r in rows if 0 <= r.train_id < IGNORE_INDEX), key=lambda r: r.train_id)
    classes = [
        ClassDef(
            name=r.name,
            description=known.get(r.name),
            is_thing=r.has_instances,
            value=r.train_id if ids == "train" else r.label_id,
            color=r.color,
        )
        for r in train
    ]
    if ids == "train":
        return LabelSpace(classes, name=decl.name, ignore_values=(IGNORE_INDEX,))
    used = {r.label_id for r in train}
    ignore = tuple(sorted({r.label_id for r in rows if r.label_id >= 0} - used))
    return LabelSpace(classes, name=decl.name, ignore_values=(*ignore, IGNORE_INDEX))


def mapillary_card(version: str, spec: Mapping[str, Any], decl: DatasetDecl) -> LabelSpace:
    """Mapillary Vistas from ``config_v<version>.json`` when present, else the carried list."""
    _check_keys(spec, {"file"}, decl)
    stem = f"mapillary-v{version}"
    data = load_card_file(stem)
    expected = len(data["classes"]) + 1  # + Unlabeled
    path = _first_existing(decl, spec, (f"config_v{version}.json", "config.json"))
    if path is None:
        ignore = tuple(int(v) for v in data["ignore_values"])
        return LabelSpace(card_classes(stem), name=decl.name, ignore_values=ignore)
    rows = meta.read_mapillary_config(path)
    if len(rows) != expected:
        other = {66: "1.2", 124: "2.0"}.get(len(rows))
        hint = f"; it looks like v{other}: use card 'mapillary-v{other}'" if other else ""
        raise ValueError(
            f"{path}: has {len(rows)} labels but Mapillary Vistas v{version} has {expected}{hint}."
        )
    known = descriptions(stem)
    classes, ignore = [], []
    for r in rows:
        if r.name.lower() == "unlabeled":
            ignore.append(r.value)
            continue
        classes.append(
            ClassDef(
                name=r.name,
                description=known.get(r.name),
                is_thing=bool(r.is_thing),
                value=r.value,
                color=r.color,
            )
        )
    return LabelSpace(classes, name=decl.name, ignore_values=(*ignore, IGNORE_INDEX))


def coco_stuff_card(count: int, spec: Mapping[str, Any], decl: DatasetDecl) -> LabelSpace:
    """COCO-Stuff label PNGs (value = COCO id - 1); 171 leaves out the 11 unused thing ids."""
    _check_keys(spec, {"values"}, decl)
    entries = load_card_file("coco-stuff")["classes"]
    keep = [count == 182 or bool(e["in_171"]) for e in entries]
    classes = card_classes("coco-stuff", where=keep)
    return space_with_layout(
        classes, (IGNORE_INDEX,), layout=_layout(spec), name=decl.name, where=_where(decl)
    )


def _carried(stem: str) -> CardBuilder:
    return functools.partial(carried_card, stem)


CARDS: dict[str, CardBuilder] = {
    "coco-json": coco_json_card,
    "coco-panoptic-133": _carried("coco-panoptic-133"),
    "coco-stuff-171": functools.partial(coco_stuff_card, 171),
    "coco-stuff-182": functools.partial(coco_stuff_card, 182),
    "ade20k-150": ade20k_card,
    "ade20k-847": functools.partial(name_list_card, "ade20k-847"),
    "cityscapes": cityscapes_card,
    "bdd100k": _carried("bdd100k"),
    "idd": _carried("idd"),
    "mapillary-v1.2": functools.partial(mapillary_card, "1.2"),
    "mapillary-v2.0": functools.partial(mapillary_card, "2.0"),
    "pascal-voc": _carried("pascal-voc"),
    "pascal-context-59": _carried("pascal-context-59"),
    "pascal-context-459": functools.partial(name_list_card, "pascal-context-459"),
    "sun-rgbd": _carried("sun-rgbd"),
    "loveda": _carried("loveda"),
    "camvid": _carried("camvid"),
    "camvid-32": _carried("camvid-32"),
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


def card_space(
    card: str, *, file: str | Path | None = None, root: str | Path = ".", name: str = ""
) -> LabelSpace:
    """A card's label space outside a datasets.yaml (e.g. ``babelseg score --card``).

    Args:
        card: The card name (a key of ``CARDS``).
        file: The card's metadata file (its ``file`` key), if it reads one.
        root: Folder that relative paths and default metadata files are looked up in.
        name: Name of the space (default: the card name).
    """
    from babelseg.data.sample import Annotation, Task

    spec: dict[str, Any] = {"card": card}
    if file is not None:
        spec["file"] = str(Path(file).resolve())
    decl = DatasetDecl(
        name=name or card,
        format="semantic-png",
        root=Path(root).resolve(),
        task=Task.SEMANTIC,
        annotation=Annotation.CLEAN,
        heldout=False,
        labels_spec=spec,
        splits={},
        source="--card",
    )
    return build_card(spec, decl)


__all__ = ["ADE20K_MULTIWORD_NAMES", "CARDS", "build_card", "card_space"]
