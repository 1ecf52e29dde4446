"""The SynthWorld description: fine classes with visual signatures, scene types, dataset views.

A world is read from YAML by ``world_yaml.load_world`` (``default_world.yaml`` is built in).
These are its validated, immutable types.

Top-level keys: ``name``, ``scales`` (``{scale: {size_factor}}``), ``classes`` (list),
``scenes`` (mapping), ``datasets`` (list of dataset views, see ``views.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from babelseg.data.synth.schema import plain, suggest
from babelseg.data.synth.views import DatasetView

REGIONS = ("top", "middle", "bottom", "full")
EDGES = ("straight", "wavy", "jagged", "ridged", "perspective")
ALIGNS = ("inside", "bottom")


@dataclass(frozen=True)
class ColorSpec:
    """A colour range: HSV centre (hue in degrees, saturation and value in 0..1) +- spread."""

    hsv: tuple[float, float, float]
    spread: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class TextureSpec:
    """A texture: family (``TEXTURES``), frequency (cycles per region height), strength, angle.

    ``accent`` (HSV) makes a two-tone texture: the texture mixes the base colour with the accent
    (stripes of a crosswalk, grout of tiles); without it the texture modulates brightness.
    """

    family: str = "flat"
    frequency: float = 4.0
    strength: float = 0.1
    angle: float = 0.0
    accent: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class GroupSpec:
    """Things that sometimes come in overlapping groups (a crowd of people)."""

    prob: float
    size: tuple[int, int]


@dataclass(frozen=True)
class SupportSpec:
    """An object that stands on another one (a traffic light on a pole, a rider on a bicycle).

    Attributes:
        cls: The supporting world class (drawn under the object).
        elevation: Height of the object's bottom above the ground, in object heights.
        size: Height of the support in object heights; ``None``: from the ground to the object.
    """

    cls: str
    elevation: tuple[float, float]
    size: float | None = None


@dataclass(frozen=True)
class ClassSpec:
    """One fine world class and its visual signature.

    Band classes (``region`` set) fill a horizontal band of the scene; shaped classes
    (``shape`` set) are drawn as objects, standing on the ground or placed on a host class
    (``hosts``). ``size`` is the object height as a fraction of the image height at the nearest
    depth (hosted objects: of the host region's height); ``aspect`` is width / height.
    """

    name: str
    description: str
    kind: str
    scenes: tuple[str, ...]
    color: ColorSpec
    texture: TextureSpec = TextureSpec()
    region: str | None = None
    edge: str = "straight"
    shape: str | None = None
    shape_params: dict = field(default_factory=dict)
    hosts: tuple[str, ...] = ()
    align: str = "inside"
    size: tuple[float, float] = (0.2, 0.3)
    aspect: tuple[float, float] = (1.0, 1.0)
    count: tuple[int, int] = (0, 1)
    depth: tuple[float, float] = (0.0, 1.0)
    group: GroupSpec | None = None
    support: SupportSpec | None = None

    @property
    def is_thing(self) -> bool:
        return self.kind == "thing"


@dataclass(frozen=True)
class ChooseSpec:
    """Pick ``k`` of ``classes`` (e.g. one or two of grass, water, sand)."""

    classes: tuple[str, ...]
    k: tuple[int, int]


@dataclass(frozen=True)
class SceneSpec:
    """A scene type: band heights (fractions of the image), object scale at the horizon, options."""

    name: str
    bands: dict[str, tuple[float, float]]
    far_scale: float = 0.35
    optional: dict[str, float] = field(default_factory=dict)
    choose: tuple[ChooseSpec, ...] = ()
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class ScaleSpec:
    """A generation scale (``tiny`` for tests, ``default``): image size factor."""

    size_factor: float = 1.0


@dataclass(frozen=True)
class World:
    """A validated world. ``classes`` order defines world class indices."""

    name: str
    classes: tuple[ClassSpec, ...]
    scenes: dict[str, SceneSpec]
    datasets: tuple[DatasetView, ...]
    scales: dict[str, ScaleSpec]
    source: str = ""

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def class_index(self, name: str) -> int:
        return self.class_names.index(name)

    def dataset(self, name: str) -> DatasetView:
        for d in self.datasets:
            if d.name == name:
                return d
        names = [d.name for d in self.datasets]
        raise ValueError(
            f"World '{self.name}' has no dataset '{name}'{suggest(name, names)}; datasets: {names}."
        )

    def to_dict(self) -> dict[str, Any]:
        """A plain mapping that :func:`parse_world` reads back (the resolved world)."""

        def clean(obj: Any) -> Any:
            data = asdict(obj)
            return {k: v for k, v in data.items() if v is not None and k not in ("source",)}

        classes = []
        for c in self.classes:
            d = clean(c)
            if c.support is not None:
                d["support"] = {"class": c.support.cls, "elevation": list(c.support.elevation)}
                if c.support.size is not None:
                    d["support"]["size"] = c.support.size
            if c.texture.accent is None:
                d["texture"].pop("accent")
            classes.append(d)
        scenes = {}
        for s in self.scenes.values():
            d = clean(s)
            d.pop("name")
            scenes[s.name] = d
        return plain(
            {
                "name": self.name,
                "scales": {k: asdict(v) for k, v in self.scales.items()},
                "classes": classes,
                "scenes": scenes,
                "datasets": [d.to_dict() for d in self.datasets],
            }
        )
