"""Readers of the metadata files that datasets ship with their class lists.

Each reader returns plain rows and raises ``FileNotFoundError``/``ValueError`` naming the file and
what to do. Formats:

* ADE20K ``objectInfo150.csv`` (CSAIL: ``Idx,Ratio,Train,Val,Stuff,Name``, synonyms separated by
  ``;``) and ``objectInfo150.txt`` (inside ``ADEChallengeData2016.zip``: tab-separated
  ``Idx Ratio Train Val Name``, synonyms separated by ``, ``, no Stuff column).
* Mapillary Vistas ``config_v1.2.json`` / ``config_v2.0.json``: ``{"labels": [{"name",
  "readable", "instances", "color", ...}, ...]}``; a label's on-disk value is its position.
* COCO JSON: an instances or panoptic file with ``categories``, or a bare category list.
* cityscapesScripts' ``labels.py`` label table: the ``Label(name, id, trainId, category, catId,
  hasInstances, ignoreInEval, color)`` rows, read as text (never executed).
* Name lists (ADE20K-847, Pascal Context ``labels.txt``): one class per line, either ``name`` or
  ``id: name`` / ``id,name`` / ``id<TAB>name``; or a JSON list of names or of ``{id, name}``.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class MetadataRow:
    """One class of a metadata file.

    Attributes:
        value: The on-disk value the file gives the class (its id or position).
        name: The class name (first synonym).
        is_thing: The file's thing flag, None when the file has none.
        color: The file's RGB colour, None when the file has none.
    """

    value: int
    name: str
    is_thing: bool | None = None
    color: tuple[int, int, int] | None = None


def _need_file(path: Path, what: str, fix: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}. {fix}")


def load_json_file(path: Path, what: str) -> Any:
    """Parse a JSON file; errors name the file and the fix."""
    _need_file(path, what, "Fix the path (`file:` in the card).")
    try:
        with path.open() as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); re-download or re-export it.") from e


def read_ade_object_info(path: Path) -> list[MetadataRow]:
    """Rows of ADE20K's ``objectInfo150.csv`` or ``objectInfo150.txt`` (Idx 1..N)."""
    _need_file(
        path,
        "ADE20K class table",
        "Put objectInfo150.csv or objectInfo150.txt (ADE20K SceneParsing) there or set `file:` "
        "in the card.",
    )
    text = path.read_text(encoding="utf-8-sig")
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = "\t" if "\t" in first else ","
    rows = list(csv.DictReader(text.splitlines(), delimiter=delimiter))
    header = [h.strip() for h in (rows[0].keys() if rows else [])]
    if "Name" not in header or "Idx" not in header:
        raise ValueError(
            f"{path}: expected the ADE20K class table with columns Idx and Name (objectInfo150.csv "
            f"or objectInfo150.txt); found columns {header}."
        )
    out = []
    for r in rows:
        r = {k.strip(): (v or "").strip() for k, v in r.items() if k is not None}
        synonyms = re.split(r"[;,]", r["Name"])
        stuff = r.get("Stuff")
        out.append(
            MetadataRow(
                value=int(r["Idx"]),
                name=synonyms[0].strip(),
                is_thing=None if stuff in (None, "") else stuff == "0",
            )
        )
    return out


def read_mapillary_config(path: Path) -> list[MetadataRow]:
    """Labels of a Mapillary Vistas ``config_v*.json`` (value = position in ``labels``)."""
    data = load_json_file(path, "Mapillary Vistas config")
    labels = data.get("labels") if isinstance(data, Mapping) else None
    if not isinstance(labels, list) or not labels:
        raise ValueError(f"{path}: expected a Mapillary config with a 'labels' list.")
    out = []
    for i, lab in enumerate(labels):
        if not isinstance(lab, Mapping) or not ("readable" in lab or "name" in lab):
            raise ValueError(f"{path}: label {i} has neither 'readable' nor 'name'.")
        color = lab.get("color")
        out.append(
            MetadataRow(
                value=i,
                name=str(lab.get("readable", lab.get("name"))),
                is_thing=bool(lab.get("instances", False)),
                color=tuple(int(c) for c in color) if color else None,  # type: ignore[arg-type]
            )
        )
    return out


def read_coco_categories(path: Path) -> list[Mapping[str, Any]]:
    """The ``categories`` of a COCO JSON (or a bare list), each with ``id`` and ``name``."""
    data = load_json_file(path, "COCO JSON")
    cats = data.get("categories") if isinstance(data, Mapping) else data
    if not isinstance(cats, list) or not cats:
        raise ValueError(f"{path}: no 'categories' list; the card needs one.")
    for c in cats:
        if not isinstance(c, Mapping) or "id" not in c or "name" not in c:
            raise ValueError(f"{path}: every category needs 'id' and 'name' (got {c!r}).")
    return cats


_ID_NAME = re.compile(r"^\s*(\d+)\s*[:,\t ]\s*(.+?)\s*$")


def read_name_list(path: Path) -> list[MetadataRow]:
    """Class names from a text, CSV or JSON list (see the module docstring)."""
    _need_file(path, "Class-name list", "Fix `file:` in the card.")
    if path.suffix.lower() == ".json":
        data = load_json_file(path, "Class-name list")
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of names or of {{id, name}} objects.")
        rows = []
        for i, item in enumerate(data):
            if isinstance(item, Mapping):
                rows.append(MetadataRow(value=int(item.get("id", i)), name=str(item["name"])))
            else:
                rows.append(MetadataRow(value=i, name=str(item)))
        return rows
    rows = []
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        m = _ID_NAME.match(text)
        if m is not None:
            rows.append(MetadataRow(value=int(m.group(1)), name=m.group(2).strip().strip('"')))
        elif not rows and text.lower().replace('"', "") in ("name", "idx,name", "id,name"):
            continue  # a CSV header
        else:
            rows.append(MetadataRow(value=len(rows), name=text))
    if not rows:
        raise ValueError(f"{path}: no class names found; write one name (or 'id: name') per line.")
    return rows


@dataclass(frozen=True)
class CityscapesLabel:
    """One row of cityscapesScripts' label table."""

    name: str
    label_id: int
    train_id: int
    has_instances: bool
    color: tuple[int, int, int]


_CS_ROW = re.compile(
    r"Label\(\s*'(?P<name>[^']+)'\s*,\s*(?P<id>-?\d+)\s*,\s*(?P<train>-?\d+)\s*,\s*'[^']*'\s*,"
    r"\s*-?\d+\s*,\s*(?P<inst>True|False)\s*,\s*(?:True|False)\s*,"
    r"\s*\(\s*(?P<r>\d+)\s*,\s*(?P<g>\d+)\s*,\s*(?P<b>\d+)\s*\)\s*\)"
)


def read_cityscapes_labels(path: Path) -> list[CityscapesLabel]:
    """The label table of cityscapesScripts' ``helpers/labels.py`` (parsed, not imported)."""
    _need_file(path, "Cityscapes label table", "Point `file:` at cityscapesScripts' labels.py.")
    rows = [
        CityscapesLabel(
            name=m["name"],
            label_id=int(m["id"]),
            train_id=int(m["train"]),
            has_instances=m["inst"] == "True",
            color=(int(m["r"]), int(m["g"]), int(m["b"])),
        )
        for m in _CS_ROW.finditer(path.read_text())
    ]
    if not rows:
        raise ValueError(
            f"{path}: no `Label('name', id, trainId, 'category', catId, hasInstances, "
            "ignoreInEval, (r, g, b))` rows found; is this cityscapesScripts' labels.py?"
        )
    return rows
