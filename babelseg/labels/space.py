"""Label spaces: a dataset's classes in order, and how on-disk values map to class indices.

A label space is always an explicit object (never metadata looked up by dataset name). Class
indices are 0..K-1 in the order given; ``IGNORE_INDEX`` (255) marks pixels no class covers.
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from babelseg.labels.text_files import read_text_file

IGNORE_INDEX = 255
"""Class index of pixels that carry no label (in every label space)."""

MAX_DISK_VALUE = 65535
"""Largest on-disk value a lookup table covers (16-bit label PNGs)."""


@dataclass(frozen=True)
class ClassDef:
    """One class of a label space.

    Attributes:
        name: The class name, unique within its space (e.g. ``"person"``).
        description: Optional sentence describing the class (sentence labels).
        is_thing: True for countable objects (instances), False for stuff.
        value: The value that stands for this class on disk (label PNG value or COCO category
            id). ``None`` means "same as the class index".
        color: RGB colour for visualisation; ``None`` picks one from the index.
    """

    name: str
    description: str | None = None
    is_thing: bool = False
    value: int | None = None
    color: tuple[int, int, int] | None = None


def default_color(index: int) -> tuple[int, int, int]:
    """A distinct, deterministic RGB colour for class ``index`` (golden-ratio hue walk)."""
    hue = (index * 0.618033988749895) % 1.0
    sat = 0.65 + 0.35 * ((index // 7) % 2)
    val = 0.95 - 0.25 * ((index // 3) % 2)
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return int(r * 255), int(g * 255), int(b * 255)


@dataclass
class LabelSpace:
    """An ordered list of classes plus the on-disk encoding of their labels.

    Args:
        classes: The classes, in index order.
        name: A name for error messages and reports (usually the dataset name).
        ignore_values: On-disk values that mean "no label" (mapped to ``IGNORE_INDEX``).
            Values that are neither a class value nor listed here are *unknown*; readers map them
            to ignore and ``babelseg datasets check`` reports them.

    Raises:
        ValueError: empty space, duplicate names, or two classes with the same on-disk value.
    """

    classes: Sequence[ClassDef]
    name: str = ""
    ignore_values: tuple[int, ...] = (IGNORE_INDEX,)
    _value_to_index: dict[int, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.classes = tuple(self.classes)
        where = f" in label space '{self.name}'" if self.name else ""
        if not self.classes:
            raise ValueError(f"Empty label space{where}: give at least one class.")
        seen: dict[str, int] = {}
        for i, c in enumerate(self.classes):
            if not c.name or not c.name.strip():
                raise ValueError(f"Class {i}{where} has an empty name.")
            if c.name in seen:
                raise ValueError(
                    f"Duplicate class name '{c.name}'{where} (indices {seen[c.name]} and {i}); "
                    "class names must be unique."
                )
            seen[c.name] = i
        self._value_to_index = {}
        for i, c in enumerate(self.classes):
            v = self.value_of(i)
            if not 0 <= v <= MAX_DISK_VALUE:
                raise ValueError(f"Class '{c.name}'{where} has on-disk value {v} outside 0..65535.")
            if v in self._value_to_index:
                other = self.classes[self._value_to_index[v]].name
                raise ValueError(
                    f"Classes '{other}' and '{c.name}'{where} share the on-disk value {v}; "
                    "each class needs its own value."
                )
            if v in self.ignore_values:
                raise ValueError(
                    f"Class '{c.name}'{where} uses on-disk value {v}, which is declared as an "
                    f"ignore value {list(self.ignore_values)}."
                )
            self._value_to_index[v] = i
        self.ignore_values = tuple(int(v) for v in self.ignore_values)

    # ----------------------------------------------------------------- basic access
    def __len__(self) -> int:
        return len(self.classes)

    def __iter__(self):
        return iter(self.classes)

    @property
    def names(self) -> list[str]:
        """Class names in index order."""
        return [c.name for c in self.classes]

    @property
    def thing_mask(self) -> np.ndarray:
        """``bool[K]``: True where the class is a thing."""
        return np.array([c.is_thing for c in self.classes], dtype=bool)

    def index(self, name: str) -> int:
        """Index of the class called ``name``; ValueError listing the names when absent."""
        for i, c in enumerate(self.classes):
            if c.name == name:
                return i
        raise ValueError(f"No class '{name}' in label space '{self.name}'. Classes: {self.names}")

    def value_of(self, index: int) -> int:
        """On-disk value of class ``index``."""
        v = self.classes[index].value
        return index if v is None else int(v)

    def index_of_value(self, value: int) -> int | None:
        """Class index for an on-disk value, or None when the value is not a class value."""
        return self._value_to_index.get(int(value))

    def color_of(self, index: int) -> tuple[int, int, int]:
        c = self.classes[index].color
        return tuple(c) if c is not None else default_color(index)  # type: ignore[return-value]

    @property
    def palette(self) -> np.ndarray:
        """``uint8[K, 3]`` colours in index order."""
        return np.array([self.color_of(i) for i in range(len(self))], dtype=np.uint8)

    # ----------------------------------------------------------------- value mapping
    def lookup_table(self) -> np.ndarray:
        """``int64[65536]`` table: on-disk value -> class index (``IGNORE_INDEX`` elsewhere)."""
        table = np.full(MAX_DISK_VALUE + 1, IGNORE_INDEX, dtype=np.int64)
        for v, i in self._value_to_index.items():
            table[v] = i
        return table

    def encode(self, raw: np.ndarray) -> np.ndarray:
        """Map a raw on-disk label map (any integer dtype, values 0..65535) to class indices.

        Args:
            raw: ``int[H, W]`` on-disk values.
        Returns:
            ``int64[H, W]`` class indices, ``IGNORE_INDEX`` for ignore and unknown values.
        Raises:
            ValueError: a value outside 0..65535 (it would index the table wrongly).
        """
        raw = np.asarray(raw)
        if raw.size and raw.dtype not in (np.uint8, np.uint16):
            lo, hi = int(raw.min()), int(raw.max())
            if lo < 0 or hi > MAX_DISK_VALUE:
                raise ValueError(
                    f"Label values must lie in 0..{MAX_DISK_VALUE} (label space '{self.name}'); "
                    f"got values from {lo} to {hi}. Read label PNGs as 8- or 16-bit indices."
                )
        return self.lookup_table()[raw.astype(np.int64)]

    def unknown_values(self, raw: np.ndarray) -> dict[int, int]:
        """On-disk values in ``raw`` that are neither a class value nor an ignore value.

        Returns:
            ``{value: pixel count}`` for each unknown value.
        """
        values, counts = np.unique(raw, return_counts=True)
        known = set(self._value_to_index) | set(self.ignore_values)
        return {int(v): int(n) for v, n in zip(values, counts) if int(v) not in known}

    def subset(self, names: Iterable[str], name: str | None = None) -> LabelSpace:
        """A new space with only the named classes (in the given order), values kept."""
        keep = [self.classes[self.index(n)] for n in names]
        return LabelSpace(keep, name=name or self.name, ignore_values=self.ignore_values)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_names(cls, names: Sequence[str], name: str = "") -> LabelSpace:
        """A space of stuff classes whose on-disk values are their indices.

        Names may carry a description after a colon: ``"bus: a road vehicle for many people"``.
        Vocabularies of more than 255 classes use 65535 as their ignore value (255 is a class).
        """
        classes = []
        for raw in names:
            text = str(raw).strip()
            if ":" in text:
                label, desc = text.split(":", 1)
                classes.append(ClassDef(name=label.strip(), description=desc.strip() or None))
            else:
                classes.append(ClassDef(name=text))
        ignore = (IGNORE_INDEX,) if len(classes) <= IGNORE_INDEX else (MAX_DISK_VALUE,)
        return cls(classes, name=name, ignore_values=ignore)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str = "", source: str = "") -> LabelSpace:
        """Build from ``{"classes": [...], "ignore_values": [...], "name": ...}``.

        Each class entry is either a string (name) or a mapping with keys ``name``,
        ``description``, ``is_thing`` (alias ``isthing``), ``value`` (alias ``id``), ``color``.
        """
        where = f" in {source}" if source else ""
        if not isinstance(data, Mapping) or "classes" not in data:
            raise ValueError(f"A label space{where} needs a 'classes' list.")
        allowed = {"name", "description", "is_thing", "isthing", "value", "id", "color"}
        classes = []
        for i, entry in enumerate(data["classes"] or []):
            if isinstance(entry, str):
                classes.append(ClassDef(name=entry))
                continue
            if not isinstance(entry, Mapping) or "name" not in entry:
                raise ValueError(f"Class entry {i}{where} must be a name or a mapping with 'name'.")
            extra = set(entry) - allowed
            if extra:
                raise ValueError(
                    f"Class entry {i} ('{entry['name']}'){where} has unknown keys {sorted(extra)}; "
                    f"allowed: {sorted(allowed)}."
                )
            value = entry.get("value", entry.get("id"))
            color = entry.get("color")
            classes.append(
                ClassDef(
                    name=str(entry["name"]),
                    description=entry.get("description"),
                    is_thing=bool(entry.get("is_thing", entry.get("isthing", False))),
                    value=None if value is None else int(value),
                    color=None if color is None else tuple(int(c) for c in color),  # type: ignore[arg-type]
                )
            )
        ignore = data.get("ignore_values", [IGNORE_INDEX])
        return cls(
            classes,
            name=str(data.get("name", name) or name),
            ignore_values=tuple(int(v) for v in ignore),
        )

    @classmethod
    def from_yaml(cls, path: str | Path, name: str = "") -> LabelSpace:
        """Load a label space from a YAML file (see :meth:`from_dict` for the schema)."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"Label space file not found: {p}. Check the path.")
        try:
            data = yaml.safe_load(read_text_file(p, what="label space"))
        except yaml.YAMLError as e:
            raise ValueError(f"{p} is not valid YAML: {e}") from e
        return cls.from_dict(data, name=name or p.stem, source=str(p))

    def to_dict(self) -> dict[str, Any]:
        """A plain dict that :meth:`from_dict` reads back (JSON/YAML friendly)."""
        classes = []
        for i, c in enumerate(self.classes):
            entry: dict[str, Any] = {
                "name": c.name,
                "is_thing": c.is_thing,
                "value": self.value_of(i),
            }
            if c.description:
                entry["description"] = c.description
            if c.color is not None:
                entry["color"] = list(c.color)
            classes.append(entry)
        return {"name": self.name, "ignore_values": list(self.ignore_values), "classes": classes}
