"""Reading and validating the dataset views of a world YAML (``datasets:`` entries).

Each view maps world classes to its labels (``taxonomy``), declares its style, format, on-disk
encoding, splits per scale and augmentation; errors name the file, the dataset and the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from babelseg.data.synth.schema import (
    Where,
    check_keys,
    get_bool,
    get_choice,
    get_names,
    get_number,
    get_path_component,
    get_range,
    get_str,
    get_vector,
    is_path_component,
    suggest,
)
from babelseg.data.synth.views import (
    ANNOTATIONS,
    AUGMENTATION_KEYS,
    FORMAT_TASKS,
    IGNORE,
    PNG_MODES,
    CrowdSpec,
    DatasetView,
    LabelDef,
    NoiseSpec,
    StyleSpec,
)
from babelseg.labels.space import IGNORE_INDEX

if TYPE_CHECKING:
    from babelseg.data.synth.world import ClassSpec


_VIEW_KEYS = (
    "name", "text_context", "format", "task", "annotation", "heldout", "scenes", "image_size",
    "size_jitter", "image_format", "jpeg_quality", "style", "encoding", "taxonomy", "unlisted",
    "descriptions", "novel_labels", "splits", "augmentation", "noise", "crowd",
)  # fmt: skip


def _parse_style(data: Any, where: Where) -> StyleSpec:
    s = check_keys(data, StyleSpec.__dataclass_fields__, where)
    base = StyleSpec()
    return StyleSpec(
        cast=get_vector(s, "cast", where, 3, default=base.cast, lo=0.0),
        contrast=get_number(s, "contrast", where, default=base.contrast, lo=0.0),
        brightness=get_number(s, "brightness", where, default=base.brightness, lo=-1.0, hi=1.0),
        saturation=get_number(s, "saturation", where, default=base.saturation, lo=0.0),
        noise=get_number(s, "noise", where, default=base.noise, lo=0.0),
        blur=get_number(s, "blur", where, default=base.blur, lo=0.0),
        jitter=get_number(s, "jitter", where, default=base.jitter, lo=0.0, hi=0.5),
    )


def _parse_encoding(data: Any, where: Where, fmt: str) -> dict[str, Any]:
    keys = ("png_mode", "reduce_zero_label", "values", "unlabelled_value", "void_border")
    e = check_keys(data, keys if fmt == "semantic-png" else ("values",), where)
    out: dict[str, Any] = {}
    if fmt == "semantic-png":
        out["png_mode"] = get_choice(e, "png_mode", PNG_MODES, where, default="L")
        out["reduce_zero_label"] = get_bool(e, "reduce_zero_label", where)
        default_unlabelled = 0 if out["reduce_zero_label"] else IGNORE_INDEX
        out["unlabelled_value"] = int(
            get_number(e, "unlabelled_value", where, default=default_unlabelled, lo=0)
        )
        if out["reduce_zero_label"] and out["unlabelled_value"] != 0:
            raise (where / "unlabelled_value").error(
                "with reduce_zero_label the unlabelled value is 0."
            )
        out["void_border"] = int(get_number(e, "void_border", where, default=0, lo=0, hi=8))
    values = e.get("values", {}) or {}
    if not isinstance(values, Mapping):
        raise (where / "values").error("expected {label: on-disk value}.")
    out["values"] = {
        str(k): int(get_number(values, k, where / "values", lo=0, hi=65535)) for k in values
    }
    return out


def _coco_ids(labels: list[tuple[str, bool]]) -> dict[str, int]:
    """COCO-like category ids: things 1.. with a gap after every fifth, stuff from 92."""
    ids, n_thing, n_stuff = {}, 0, 0
    for name, is_thing in labels:
        if is_thing:
            ids[name] = 1 + n_thing + n_thing // 5
            n_thing += 1
        else:
            ids[name] = 92 + n_stuff
            n_stuff += 1
    return ids


def _resolve_labels(
    view: dict, where: Where, classes: list[ClassSpec]
) -> tuple[list[LabelDef], list[int]]:
    by_name = {c.name: c for c in classes}
    order: list[str] = []
    covers: dict[str, list[str]] = {}
    for c in classes:
        label = view["taxonomy"].get(c.name, view["unlisted"])
        if label == IGNORE:
            continue
        covers.setdefault(label, []).append(c.name)
    for label in [view["unlisted"]] + list(view["taxonomy"].values()):
        if label != IGNORE and label not in order and label in covers:
            order.append(label)
    fmt, enc = view["format"], view["encoding"]
    things = {lab: all(by_name[c].is_thing for c in covers[lab]) for lab in order}
    if fmt == "coco-instances":
        stuff = [lab for lab in order if not things[lab]]
        if stuff:
            raise (where / "taxonomy").error(
                f"coco-instances labels things only; labels {stuff} cover stuff classes: "
                "map those to 'ignore'."
            )
    if fmt == "semantic-png":
        auto = {lab: i for i, lab in enumerate(order)}
    else:
        auto = _coco_ids([(lab, things[lab]) for lab in order])
    for lab in enc["values"]:
        if lab not in order:
            raise (where / "encoding" / "values").error(
                f"'{lab}' is not a label of this dataset{suggest(lab, order)}."
            )
    values = {lab: enc["values"].get(lab, auto[lab]) for lab in order}
    top = 65535 if enc.get("png_mode") == "I;16" or fmt != "semantic-png" else 255
    top -= 1 if enc.get("reduce_zero_label") else 0
    seen: dict[int, str] = {}
    for lab, v in values.items():
        if (
            v > top
            or v in seen
            or (
                fmt == "semantic-png"
                and v == enc["unlabelled_value"]
                and not enc["reduce_zero_label"]
            )
        ):
            raise (where / "encoding" / "values").error(
                f"label '{lab}' gets on-disk value {v}, which is taken, the unlabelled value, "
                f"or above {top}."
            )
        seen[v] = lab
    for lab in view["descriptions"]:
        if lab not in order:
            raise (where / "descriptions").error(
                f"'{lab}' is not a label of this dataset{suggest(lab, order)}."
            )
    labels = []
    for lab in order:
        desc = view["descriptions"].get(lab)
        if desc is None and len(covers[lab]) == 1:
            desc = by_name[covers[lab][0]].description
        if desc is None:
            raise (where / "descriptions").error(
                f"label '{lab}' covers {covers[lab]}: give it a description sentence."
            )
        labels.append(LabelDef(lab, desc, things[lab], values[lab], tuple(covers[lab])))
    index = {lab.name: i for i, lab in enumerate(labels)}
    world_to_label = [
        index.get(view["taxonomy"].get(c.name, view["unlisted"]), -1) for c in classes
    ]
    return labels, world_to_label


def _parse_scene_mix(mix: Any, where: Where, scenes: list[str]) -> dict[str, float]:
    """``{scene: weight}`` (known scenes, weights >= 0, not all zero)."""
    if not isinstance(mix, Mapping) or not mix:
        raise where.error("expected {scene: weight}.")
    get_names({"s": list(mix)}, "s", where, scenes)
    mix = {str(k): get_number(mix, k, where, lo=0.0) for k in mix}
    if sum(mix.values()) <= 0:
        raise where.error("scene weights must not all be zero.")
    return mix


def _parse_taxonomy(taxonomy: Any, where: Where, classes: list[ClassSpec]) -> Mapping:
    """``{world class: label name | ignore}`` over known world classes."""
    if not isinstance(taxonomy, Mapping) or not taxonomy:
        raise where.error("expected {world class: label name | ignore}.")
    class_names = [c.name for c in classes]
    for k, v in taxonomy.items():
        if k not in class_names:
            raise (where / str(k)).error(f"not a world class{suggest(k, class_names)}.")
        if not isinstance(v, str) or not v.strip():
            raise (where / str(k)).error(f"expected a label name or 'ignore', got {v!r}.")
    return taxonomy


def _parse_splits(data: Any, where: Where, scales: list[str]) -> dict[str, dict[str, int]]:
    """``{scale: {split: number of images}}`` for every scale."""
    splits = {}
    for scale, counts in check_keys(data, scales, where, required=scales).items():
        sw = where / scale
        if not isinstance(counts, Mapping) or not counts:
            raise sw.error("expected {split: number of images}.")
        for s in counts:
            if not is_path_component(str(s)):
                raise (sw / str(s)).error(
                    "a split name becomes a folder name: use one path component (no '/', "
                    "'\\', ':', '.' or '..')."
                )
        splits[scale] = {str(s): int(get_number(counts, s, sw, lo=0)) for s in counts}
    return splits


def _parse_noise(data: Any, where: Where) -> NoiseSpec:
    """The annotation noise of a ``noisy`` dataset (defaults of :class:`NoiseSpec`)."""
    nd = check_keys(data, NoiseSpec.__dataclass_fields__, where)
    base = NoiseSpec()
    return NoiseSpec(
        tolerance=get_number(nd, "tolerance", where, default=base.tolerance, lo=0.0),
        jitter=get_number(nd, "jitter", where, default=base.jitter, lo=0.0),
        morph_prob=get_number(nd, "morph_prob", where, default=base.morph_prob, lo=0.0, hi=1.0),
        morph_radius=get_range(
            nd, "morph_radius", where, default=base.morph_radius, lo=1, integer=True
        ),
        swap_prob=get_number(nd, "swap_prob", where, default=base.swap_prob, lo=0.0, hi=1.0),
        missing_prob=get_number(
            nd, "missing_prob", where, default=base.missing_prob, lo=0.0, hi=1.0
        ),
        missing_fraction=get_range(
            nd, "missing_fraction", where, default=base.missing_fraction, lo=0.0, hi=0.95
        ),
        splits=tuple(str(s) for s in nd.get("splits", base.splits)),
    )


def _parse_crowd(data: Any, where: Where) -> CrowdSpec:
    """Crowd regions of an instance dataset."""
    cd = check_keys(data, ("prob", "min_members"), where)
    return CrowdSpec(
        prob=get_number(cd, "prob", where, default=0.5, lo=0.0, hi=1.0),
        min_members=int(get_number(cd, "min_members", where, default=3, lo=2)),
    )


def parse_view(
    data: Any, where: Where, *, classes: list[ClassSpec], scenes: list[str], scales: list[str]
) -> DatasetView:
    """Validate one dataset view of a world.

    Raises:
        ValueError: naming the file, the dataset and the key of the first problem.
    """
    if isinstance(data, Mapping) and isinstance(data.get("name"), str):
        where = Where(where.source, f"{where.path}({data['name']})")
    d = check_keys(
        data,
        _VIEW_KEYS,
        where,
        required=("name", "format", "scenes", "image_size", "taxonomy", "splits"),
    )
    name = get_path_component(d, "name", where)
    fmt = get_choice(d, "format", FORMAT_TASKS, where)
    task = get_choice(d, "task", FORMAT_TASKS[fmt], where, default=FORMAT_TASKS[fmt][0])
    annotation = get_choice(d, "annotation", ANNOTATIONS, where, default="clean")
    if annotation == "boxes" and fmt != "coco-instances":
        raise (where / "annotation").error("boxes-only annotation needs format coco-instances.")
    mix = _parse_scene_mix(d["scenes"], where / "scenes", scenes)
    size = get_vector(d, "image_size", where, 2, lo=16)
    taxonomy = _parse_taxonomy(d["taxonomy"], where / "taxonomy", classes)
    unlisted = get_str(d, "unlisted", where, default=IGNORE)
    descriptions = d.get("descriptions", {}) or {}
    if not isinstance(descriptions, Mapping) or not all(
        isinstance(v, str) for v in descriptions.values()
    ):
        raise (where / "descriptions").error("expected {label: description sentence}.")
    splits = _parse_splits(d["splits"], where / "splits", scales)
    augmentation = check_keys(
        d.get("augmentation", {}) or {}, AUGMENTATION_KEYS, where / "augmentation"
    )
    noise = None
    if annotation == "noisy":
        noise = _parse_noise(d.get("noise", {}) or {}, where / "noise")
    elif "noise" in d:
        raise (where / "noise").error("noise settings need annotation: noisy.")
    crowd = _parse_crowd(d["crowd"], where / "crowd") if "crowd" in d else None
    view = {
        "format": fmt,
        "encoding": _parse_encoding(d.get("encoding", {}) or {}, where / "encoding", fmt),
        "taxonomy": {str(k): str(v).strip() for k, v in taxonomy.items()},
        "unlisted": unlisted,
        "descriptions": {str(k): str(v) for k, v in descriptions.items()},
    }
    labels, world_to_label = _resolve_labels(view, where, classes)
    label_names = [lab.name for lab in labels]
    novel = get_names(d, "novel_labels", where, label_names)
    if novel and not get_bool(d, "heldout", where):
        raise (where / "novel_labels").error("only held-out datasets declare novel labels.")
    image_format = get_choice(d, "image_format", ("png", "jpg"), where, default="png")
    return DatasetView(
        name=name,
        text_context=get_str(d, "text_context", where, default=name),
        format=fmt,
        task=task,
        annotation=annotation,
        heldout=get_bool(d, "heldout", where),
        scenes=mix,
        image_size=(int(size[0]), int(size[1])),
        size_jitter=get_number(d, "size_jitter", where, default=0.0, lo=0.0, hi=0.5),
        image_format=image_format,
        jpeg_quality=int(get_number(d, "jpeg_quality", where, default=90, lo=30, hi=100)),
        style=_parse_style(d.get("style", {}) or {}, where / "style"),
        encoding=view["encoding"],
        taxonomy=view["taxonomy"],
        unlisted=unlisted,
        descriptions=view["descriptions"],
        novel_labels=novel,
        splits=splits,
        augmentation=augmentation,
        noise=noise,
        crowd=crowd,
        labels=tuple(labels),
        world_to_label=tuple(world_to_label),
    )
