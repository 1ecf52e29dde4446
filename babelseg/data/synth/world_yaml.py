"""Reading and validating a world YAML: classes, scenes, scales and dataset views.

Errors are ``ValueError``s that name the file and the key path (``FILE: classes[3](car).texture.
family: 'strips' is not one of [...] (did you mean 'stripes'?)``). See ``default_world.yaml``
for a commented example of every key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from babelseg.data.synth.schema import (
    Where,
    check_keys,
    get_choice,
    get_names,
    get_number,
    get_range,
    get_str,
    get_vector,
    suggest,
)
from babelseg.data.synth.shapes import OVERLAY_SHAPES, SHAPES
from babelseg.data.synth.textures import TEXTURES
from babelseg.data.synth.view_yaml import parse_view
from babelseg.data.synth.world import (
    ALIGNS,
    EDGES,
    REGIONS,
    ChooseSpec,
    ClassSpec,
    ColorSpec,
    GroupSpec,
    ScaleSpec,
    SceneSpec,
    SupportSpec,
    TextureSpec,
    World,
)

DEFAULT_WORLD_PATH = Path(__file__).with_name("default_world.yaml")
"""The built-in world (33 classes, 3 scene types, 7 datasets)."""
EVIDENCE_WORLD_PATH = Path(__file__).with_name("evidence_world.yaml")
"""The built-in world for the papers' ablations (the same 33 classes; OpenImages-like noisy
masks, held-out rare and coarse label names, datasets at different resolutions and crops)."""
BUILTIN_WORLDS = {"default": DEFAULT_WORLD_PATH, "evidence": EVIDENCE_WORLD_PATH}
"""Names ``load_world`` (and ``babelseg synth --world``) accept instead of a file."""

_CLASS_KEYS = (
    "name", "description", "kind", "scenes", "color", "texture", "region", "edge", "shape",
    "shape_params", "hosts", "align", "size", "aspect", "count", "depth", "group", "support",
)  # fmt: skip


def _parse_color(data: Any, where: Where) -> tuple[float, float, float]:
    hsv = get_vector({"v": data}, "v", where, 3, lo=0.0)
    if hsv[1] > 1 or hsv[2] > 1:
        raise where.error(f"saturation and value must be in 0..1, got {list(hsv)}.")
    return hsv


def _parse_texture(data: Any, where: Where) -> TextureSpec:
    tex = check_keys(data, ("family", "frequency", "strength", "angle", "accent"), where)
    return TextureSpec(
        family=get_choice(tex, "family", TEXTURES, where, default="flat"),
        frequency=get_number(tex, "frequency", where, default=4.0, lo=0.0),
        strength=get_number(tex, "strength", where, default=0.1, lo=0.0, hi=2.0),
        angle=get_number(tex, "angle", where, default=0.0),
        accent=_parse_color(tex["accent"], where / "accent") if "accent" in tex else None,
    )


def _parse_group(data: Any, where: Where) -> GroupSpec:
    g = check_keys(data, ("prob", "size"), where, required=("prob", "size"))
    return GroupSpec(
        prob=get_number(g, "prob", where, lo=0.0, hi=1.0),
        size=get_range(g, "size", where, lo=2, integer=True),
    )


def _parse_support(data: Any, where: Where) -> SupportSpec:
    s = check_keys(data, ("class", "elevation", "size"), where, required=("class", "elevation"))
    return SupportSpec(
        cls=get_str(s, "class", where),
        elevation=get_range(s, "elevation", where, lo=0.0),
        size=get_number(s, "size", where, default=None, lo=0.0),
    )


def _parse_class(data: Any, where: Where, scene_names: list[str], all_classes: list) -> ClassSpec:
    if isinstance(data, Mapping) and isinstance(data.get("name"), str):
        where = Where(where.source, f"{where.path}({data['name']})")
    d = check_keys(
        data, _CLASS_KEYS, where, required=("name", "description", "kind", "scenes", "color")
    )
    name = get_str(d, "name", where)
    color = check_keys(d["color"], ("hsv", "spread"), where / "color", required=("hsv",))
    color_spec = ColorSpec(
        hsv=_parse_color(color["hsv"], where / "color" / "hsv"),
        spread=get_vector(color, "spread", where / "color", 3, default=(0.0, 0.0, 0.0), lo=0.0),
    )
    texture = _parse_texture(d.get("texture", {}), where / "texture")
    kind = get_choice(d, "kind", ("stuff", "thing"), where)
    region = get_choice(d, "region", REGIONS, where, default=None)
    shape = get_choice(d, "shape", tuple(SHAPES) + tuple(OVERLAY_SHAPES), where, default=None)
    if (region is None) == (shape is None):
        raise where.error("give exactly one of 'region' (a band of stuff) or 'shape' (an object).")
    if kind == "thing" and shape is None:
        raise (where / "kind").error("a thing needs a 'shape' (things are countable objects).")
    params = d.get("shape_params", {})
    if not isinstance(params, Mapping):
        raise (where / "shape_params").error(f"expected a mapping, got {params!r}.")
    group = _parse_group(d["group"], where / "group") if "group" in d else None
    support = _parse_support(d["support"], where / "support") if "support" in d else None
    spec = ClassSpec(
        name=name,
        description=get_str(d, "description", where),
        kind=kind,
        scenes=get_names(d, "scenes", where, scene_names),
        color=color_spec,
        texture=texture,
        region=region,
        edge=get_choice(d, "edge", EDGES, where, default="straight"),
        shape=shape,
        shape_params=dict(params),
        hosts=get_names(
            d, "hosts", where, [str(c.get("name")) for c in all_classes if isinstance(c, Mapping)]
        ),
        align=get_choice(d, "align", ALIGNS, where, default="inside"),
        size=get_range(d, "size", where, default=(0.2, 0.3), lo=0.0, hi=4.0),
        aspect=get_range(d, "aspect", where, default=(1.0, 1.0), lo=0.01),
        count=get_range(d, "count", where, default=(0, 1), lo=0, integer=True),
        depth=get_range(d, "depth", where, default=(0.0, 1.0), lo=0.0, hi=1.0),
        group=group,
        support=support,
    )
    if shape in OVERLAY_SHAPES and not spec.hosts:
        raise (where / "hosts").error(
            f"shape '{shape}' is drawn on a host class: give 'hosts: [CLASS]'."
        )
    if not spec.scenes:
        raise (where / "scenes").error("list at least one scene the class appears in.")
    return spec


def _parse_scene(name: str, data: Any, where: Where, classes: list[ClassSpec]) -> SceneSpec:
    d = check_keys(
        data, ("bands", "far_scale", "optional", "choose", "counts"), where, required=("bands",)
    )
    bands = check_keys(d["bands"], ("top", "middle"), where / "bands")
    band_ranges = {k: get_range(bands, k, where / "bands", lo=0.0, hi=1.0) for k in bands}
    if sum(r[1] for r in band_ranges.values()) >= 1.0:
        raise (where / "bands").error(
            "top + middle heights must leave room for the bottom band (sum < 1)."
        )
    in_scene = [c.name for c in classes if name in c.scenes]
    optional = d.get("optional", {}) or {}
    if not isinstance(optional, Mapping):
        raise (where / "optional").error("expected {class: probability}.")
    for k in optional:
        get_names({"x": [k]}, "x", where / "optional", in_scene)
        get_number(optional, k, where / "optional", lo=0.0, hi=1.0)
    choose = []
    for i, entry in enumerate(d.get("choose", []) or []):
        cw = where / "choose" / i
        e = check_keys(entry, ("classes", "k"), cw, required=("classes", "k"))
        chosen = get_names(e, "classes", cw, in_scene)
        k = get_range(e, "k", cw, lo=0, hi=len(chosen), integer=True)
        choose.append(ChooseSpec(classes=chosen, k=k))
    counts = d.get("counts", {}) or {}
    if not isinstance(counts, Mapping):
        raise (where / "counts").error("expected {class: [low, high]}.")
    for k in counts:
        get_names({"x": [k]}, "x", where / "counts", in_scene)
    bottom = [c for c in classes if name in c.scenes and c.region in ("bottom", "full")]
    if not bottom:
        raise where.error(
            "a scene needs at least one class with region 'bottom' or 'full' (the ground)."
        )
    return SceneSpec(
        name=name,
        bands=band_ranges,
        far_scale=get_number(d, "far_scale", where, default=0.35, lo=0.01, hi=1.0),
        optional={str(k): float(v) for k, v in optional.items()},
        choose=tuple(choose),
        counts={str(k): get_range(counts, k, where / "counts", lo=0, integer=True) for k in counts},
    )


def _check_references(classes: list[ClassSpec], where: Where) -> None:
    by_name = {c.name: c for c in classes}
    for i, c in enumerate(classes):
        cw = Where(where.source, f"classes[{i}]({c.name})")
        for host in c.hosts:
            if host not in by_name or by_name[host].region is None:
                bands = [b.name for b in classes if b.region]
                raise (cw / "hosts").error(
                    f"host '{host}' must be a band class{suggest(host, bands)}: {bands}."
                )
        if c.support is not None:
            s = by_name.get(c.support.cls)
            if s is None or s.shape is None or s.support is not None:
                shaped = [b.name for b in classes if b.shape and b.support is None]
                raise (cw / "support" / "class").error(
                    f"'{c.support.cls}' must be a shaped class without support"
                    f"{suggest(c.support.cls, shaped)}."
                )


def parse_world(data: Any, source: str = "<dict>") -> World:
    """Validate a world mapping (as loaded from YAML).

    Raises:
        ValueError: naming ``source`` and the key path of the first problem.
    """
    where = Where(source)
    d = check_keys(
        data,
        ("name", "scales", "classes", "scenes", "datasets"),
        where,
        required=("classes", "scenes", "datasets"),
    )
    if not isinstance(d["scenes"], Mapping) or not d["scenes"]:
        raise (where / "scenes").error("expected a mapping {scene name: {...}}.")
    scene_names = [str(s) for s in d["scenes"]]
    if not isinstance(d["classes"], list) or not d["classes"]:
        raise (where / "classes").error("expected a non-empty list of classes.")
    classes = [
        _parse_class(c, where / "classes" / i, scene_names, d["classes"])
        for i, c in enumerate(d["classes"])
    ]
    seen: set[str] = set()
    for i, c in enumerate(classes):
        if c.name in seen:
            raise (where / "classes" / i).error(f"class name '{c.name}' is used twice.")
        seen.add(c.name)
    _check_references(classes, where)
    scenes = {
        n: _parse_scene(n, d["scenes"][n], where / "scenes" / n, classes) for n in scene_names
    }
    scales_raw = d.get("scales", {"tiny": {"size_factor": 0.5}, "default": {"size_factor": 1.0}})
    if not isinstance(scales_raw, Mapping) or not scales_raw:
        raise (where / "scales").error("expected {scale: {size_factor: x}}.")
    scales = {}
    for k, v in scales_raw.items():
        sv = check_keys(v, ("size_factor",), where / "scales" / str(k))
        scales[str(k)] = ScaleSpec(
            get_number(sv, "size_factor", where / "scales" / str(k), default=1.0, lo=0.05, hi=8.0)
        )
    if not isinstance(d["datasets"], list) or not d["datasets"]:
        raise (where / "datasets").error("expected a non-empty list of dataset views.")
    views = [
        parse_view(
            v, where / "datasets" / i, classes=classes, scenes=scene_names, scales=list(scales)
        )
        for i, v in enumerate(d["datasets"])
    ]
    names = [v.name for v in views]
    for i, n in enumerate(names):
        if n in names[:i]:
            raise (where / "datasets" / i).error(f"dataset name '{n}' is used twice.")
    trained = {label for v in views if not v.heldout for label in v.label_names}
    for i, v in enumerate(views):
        for label in v.novel_labels:
            if label in trained:
                raise (Where(where.source, f"datasets[{i}]({v.name})") / "novel_labels").error(
                    f"'{label}' is declared novel but a training dataset has a label with "
                    "that name."
                )
    name = d.get("name", Path(source).stem)
    return World(
        name=str(name),
        classes=tuple(classes),
        scenes=scenes,
        datasets=tuple(views),
        scales=scales,
        source=source,
    )


def load_world(path: str | Path | None = None) -> World:
    """Load and validate a world YAML; ``None`` loads the built-in default world, and a name of
    ``BUILTIN_WORLDS`` (``default``, ``evidence``) that is not an existing file loads that world.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: invalid YAML or schema (names the file and the key).
    """
    p = DEFAULT_WORLD_PATH if path is None else Path(path)
    if not p.is_file() and str(path) in BUILTIN_WORLDS:
        p = BUILTIN_WORLDS[str(path)]
    if not p.is_file():
        raise FileNotFoundError(
            f"World file not found: {p}. Pass an existing YAML file, a built-in world name "
            f"({', '.join(BUILTIN_WORLDS)}), or omit --world."
        )
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{p} is not valid YAML: {e}") from e
    return parse_world(data, source=str(p))
