"""``babelseg datasets check``: what is on disk, per split, before anything trains on it.

For each split: the number of images, per-class pixel counts (semantic and panoptic data),
per-class segment counts (panoptic and instance data; crowd counted separately), on-disk values
the label table does not know (value -> pixels and up to 3 example files), and a list of
problems, each naming the file and saying what to do. Errors of single files become problems;
the check goes on with the other files.

It checks what training reads: every image is decoded (a truncated file is a problem), label
PNGs are counted with ``np.bincount`` on the raw values and resolved through the lookup table
once per split, COCO segmentations are validated (RLE runs must cover the mask exactly) without
being decoded, and a split without images is a problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from babelseg.data.declaration import DatasetDecl
from babelseg.data.image_io import decoded_size, read_panoptic_png
from babelseg.data.label_audit import declaration_problems, histogram_problems
from babelseg.data.label_encoding import label_decoder
from babelseg.data.label_source import resolve_label_space
from babelseg.data.readers import coco_instances as ci
from babelseg.data.readers import coco_panoptic as cp
from babelseg.data.readers import semantic_png as sp
from babelseg.data.sample import Annotation
from babelseg.labels.space import IGNORE_INDEX, MAX_DISK_VALUE, LabelSpace

MAX_EXAMPLES = 3


@dataclass
class UnknownValue:
    """An on-disk value (label PNG value or category id) that the label table does not know.

    Attributes:
        pixels: Pixels carrying it (instance data: annotation areas).
        examples: Up to ``MAX_EXAMPLES`` files where it occurs.
    """

    pixels: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, pixels: int, example: str) -> None:
        self.pixels += int(pixels)
        if example not in self.examples and len(self.examples) < MAX_EXAMPLES:
            self.examples.append(example)


@dataclass
class SplitReport:
    """What one split holds.

    Attributes:
        split: Split name.
        num_images: Images in the split (with and without problems).
        num_read: Images whose labels were read without a problem.
        pixel_counts: ``{class name: pixels}`` (semantic and panoptic data), else None.
        segment_counts: ``{class name: non-crowd segments}`` (panoptic, instance), else None.
        crowd_counts: ``{class name: crowd segments}`` (panoptic, instance), else None.
        unknown_values: ``{on-disk value: UnknownValue}``.
        problems: One line per problem: the file, what is wrong, what to do.
    """

    split: str
    num_images: int = 0
    num_read: int = 0
    pixel_counts: dict[str, int] | None = None
    segment_counts: dict[str, int] | None = None
    crowd_counts: dict[str, int] | None = None
    unknown_values: dict[int, UnknownValue] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "num_images": self.num_images,
            "num_read": self.num_read,
            "pixel_counts": self.pixel_counts,
            "segment_counts": self.segment_counts,
            "crowd_counts": self.crowd_counts,
            "unknown_values": {
                str(v): {"pixels": u.pixels, "examples": list(u.examples)}
                for v, u in sorted(self.unknown_values.items())
            },
            "problems": list(self.problems),
        }


@dataclass
class DatasetReport:
    """The check of one dataset.

    Attributes:
        name, format, task, annotation, heldout: From the declaration.
        class_names: The label space's classes (empty when it could not be built).
        undescribed: Classes without a description (text mode ``description`` uses the name).
        splits: ``{split: SplitReport}``.
        problems: Dataset-level problems (label space, unknown split names).
    """

    name: str
    format: str
    task: str
    annotation: str
    heldout: bool
    class_names: list[str] = field(default_factory=list)
    undescribed: list[str] = field(default_factory=list)
    splits: dict[str, SplitReport] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when neither the dataset nor any split has a problem."""
        return not self.problems and not any(s.problems for s in self.splits.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "format": self.format,
            "task": self.task,
            "annotation": self.annotation,
            "heldout": self.heldout,
            "ok": self.ok,
            "num_classes": len(self.class_names),
            "class_names": list(self.class_names),
            "undescribed": list(self.undescribed),
            "splits": {k: s.to_dict() for k, s in self.splits.items()},
            "problems": list(self.problems),
        }


def _error_text(e: Exception, path: Path) -> str:
    if isinstance(e, (FileNotFoundError, ValueError)) and str(path) in str(e):
        return str(e)
    return f"{path}: {type(e).__name__}: {e}"


def _size_problem(image: Path, size: tuple[int, int], label: Path, label_size: tuple) -> str:
    return (
        f"Image {image} is {size[1]}x{size[0]} but {label} is {label_size[1]}x{label_size[0]} "
        "(WxH); re-export the label at the image size or fix the split's paths/patterns."
    )


def _per_class(space: LabelSpace, counts: np.ndarray) -> dict[str, int]:
    return {name: int(n) for name, n in zip(space.names, counts)}


def _check_semantic(decl: DatasetDecl, split: str, space: LabelSpace, rep: SplitReport) -> None:
    where = f"dataset '{decl.name}', split '{split}'"
    index = sp.index_split(decl, split)
    table, known = sp.value_table(space, decl.options, f"{decl.source} ({where})")
    decoder = label_decoder(space, decl.options, f"{decl.source} ({where})")
    rep.problems.extend(
        f"{decl.source} ({where}): {p}" for p in declaration_problems(space, decl.options)
    )
    rep.num_images = len(index.items) + len(index.missing_labels)
    for stem in index.missing_images:
        rep.problems.append(
            f"The split file of {where} lists '{stem}' but no image matches it; fix the split "
            "file or image_pattern."
        )
    for item in index.missing_labels:
        rep.problems.append(
            f"Image {item.image} has no label file (expected {item.label}); add it, fix "
            "label_pattern, or leave the image out with a split_file."
        )
    hist = np.zeros(MAX_DISK_VALUE + 1, dtype=np.int64)
    for item in index.items:
        try:
            size = decoded_size(item.image)
        except Exception as e:  # one bad file is a problem, not the end of the check
            rep.problems.append(_error_text(e, item.image))
            continue
        try:
            raw = decoder.read(item.label)
        except Exception as e:
            rep.problems.append(_error_text(e, item.label))
            continue
        if raw.shape != size:
            rep.problems.append(_size_problem(item.image, size, item.label, raw.shape))
            continue
        counts = np.bincount(raw.ravel(), minlength=1)
        hist[: counts.size] += counts
        present = np.flatnonzero(counts)
        for v in present[~known[present]]:
            rep.unknown_values.setdefault(int(v), UnknownValue()).add(counts[v], item.label.name)
        rep.num_read += 1
    classes = table != IGNORE_INDEX
    per_class = np.bincount(table[classes], weights=hist[classes], minlength=len(space))
    rep.pixel_counts = _per_class(space, per_class.astype(np.int64))
    rep.problems.extend(
        histogram_problems(
            hist, table=table, known=known, space=space, options=decl.options, where=where
        )
    )


def _count_segment(
    space: LabelSpace, rep: SplitReport, category: int, iscrowd: bool, pixels: int, example: str
) -> int | None:
    """Count one segment of ``category``; returns its class index (None: not a class)."""
    cls = space.index_of_value(category)
    if cls is None:
        if category not in space.ignore_values:
            rep.unknown_values.setdefault(category, UnknownValue()).add(pixels, example)
        return None
    counts = rep.crowd_counts if iscrowd else rep.segment_counts
    assert counts is not None
    counts[space.names[cls]] += 1
    return cls


def _check_panoptic(decl: DatasetDecl, split: str, space: LabelSpace, rep: SplitReport) -> None:
    index = cp.index_split(decl, split)
    rep.num_images = len(index.entries) + len(index.problems)
    rep.problems.extend(index.problems)
    pixels = np.zeros(len(space), dtype=np.int64)
    for entry in index.entries:
        try:
            size = decoded_size(entry.image)
            ids = read_panoptic_png(entry.png)
            if ids.shape != size:
                rep.problems.append(_size_problem(entry.image, size, entry.png, ids.shape))
                continue
            present, counts = np.unique(ids, return_counts=True)
            cp.match_segments(present[present != 0], entry.segments, entry.png)
            area = {int(v): int(n) for v, n in zip(present, counts)}
            for s in entry.segments:
                cls = _count_segment(
                    space,
                    rep,
                    int(s["category_id"]),
                    bool(s.get("iscrowd", 0)),
                    area[int(s["id"])],
                    entry.png.name,
                )
                if cls is not None:
                    pixels[cls] += area[int(s["id"])]
        except Exception as e:  # one bad file is a problem, not the end of the check
            rep.problems.append(_error_text(e, entry.png))
            continue
        rep.num_read += 1
    rep.pixel_counts = _per_class(space, pixels)


def _check_instances(decl: DatasetDecl, split: str, space: LabelSpace, rep: SplitReport) -> None:
    spec = decl.split(split)
    images_dir, json_path = Path(spec["images"]), Path(spec["json"])
    if not images_dir.is_dir():
        rep.problems.append(
            f"The images folder {images_dir} of dataset '{decl.name}' split '{split}' does not "
            "exist; fix 'images' in the split."
        )
        return
    data = ci.load_json(json_path)
    records = ci.json_records(data, "images", json_path)
    anns = ci.json_records(data, "annotations", json_path)
    pattern = str(decl.options.get("image_pattern", "{file_name}"))
    images = ci.resolve_images(records, images_dir, pattern)
    rep.num_images = len(records)
    for rec, expected in images.missing:
        rep.problems.append(
            f"Image {expected} (JSON image id {rec.get('id')}) does not exist; fix 'images' or "
            "the image_pattern option."
        )
    by_image: dict[Any, list[Mapping[str, Any]]] = {r.get("id"): [] for r in records}
    orphans = []
    for ann in anns:
        if ann.get("image_id") in by_image:
            by_image[ann.get("image_id")].append(ann)
        else:
            orphans.append(ann.get("id"))
    if orphans:
        rep.problems.append(
            f"{json_path}: {len(orphans)} annotations (ids {orphans[:5]}) refer to image ids "
            "missing from 'images'; fix or remove them."
        )
    needs_mask = decl.annotation != Annotation.BOXES
    for rec, path in zip(images.records, images.paths):
        try:
            h, w = decoded_size(path)
        except Exception as e:  # one bad file is a problem, not the end of the check
            rep.problems.append(_error_text(e, path))
            continue
        if (rec.get("height"), rec.get("width")) not in ((None, None), (h, w)):
            rep.problems.append(
                f"Image {path} is {w}x{h} but {json_path} says {rec.get('width')}x"
                f"{rec.get('height')} (WxH); use the images the JSON was made for."
            )
            continue
        ok = True
        for ann in by_image[rec.get("id")]:
            bbox = ann.get("bbox")
            area = ann.get("area") or (bbox[2] * bbox[3] if bbox else 0)
            crowd = bool(ann.get("iscrowd", 0))
            cls = _count_segment(
                space, rep, int(ann.get("category_id", -1)), crowd, area, path.name
            )
            if cls is None:
                continue
            what = f"{json_path}: annotation {ann.get('id')} of image {path.name}"
            if ci.has_segmentation(ann):
                problem = ci.segmentation_problem(ann["segmentation"], h, w)
                if problem is not None and needs_mask:
                    rep.problems.append(f"{what} {problem}; fix or remove the annotation.")
                    ok = False
            elif needs_mask:
                rep.problems.append(
                    f"{what} has no segmentation but the dataset's annotation is "
                    f"'{decl.annotation.value}'; add masks or declare `annotation: boxes`."
                )
                ok = False
            elif bbox is None:
                rep.problems.append(f"{what} has neither bbox nor segmentation; fix or remove it.")
                ok = False
        rep.num_read += int(ok)


_CHECKS = {
    "semantic-png": _check_semantic,
    "coco-panoptic": _check_panoptic,
    "coco-instances": _check_instances,
}


def check_dataset(decl: DatasetDecl, splits: list[str] | None = None) -> DatasetReport:
    """Check the files of a declared dataset.

    Args:
        decl: The dataset declaration.
        splits: Splits to check; None checks every declared split.
    Returns:
        The report; ``report.ok`` is False when any problem was found. Errors never escape:
        they become problems naming the file.
    """
    report = DatasetReport(
        name=decl.name,
        format=decl.format,
        task=decl.task.value,
        annotation=decl.annotation.value,
        heldout=decl.heldout,
    )
    try:
        space = resolve_label_space(decl)
    except Exception as e:  # the label space is user input: report, do not raise
        report.problems.append(f"Label space of dataset '{decl.name}' ({decl.source}): {e}")
        return report
    report.class_names = space.names
    report.undescribed = [c.name for c in space.classes if not (c.description or "").strip()]
    if decl.format == "coco-instances" and decl.task.value == "semantic":
        report.problems.append(
            f"Dataset '{decl.name}' ({decl.source}): format coco-instances gives instance masks, "
            "not the semantic map that task semantic trains on. For COCO-Stuff's JSON "
            "(stuff_train2017.json), use its label PNGs instead: format semantic-png with card "
            "coco-stuff-171 (stuffthingmaps_trainval2017.zip), or rasterise the JSON with "
            "cocostuffapi: `python PythonAPI/cocostuff/cocoSegmentationToPngDemo.py` (its "
            "cocoSegmentationToPng writes one label PNG per image). Otherwise declare "
            "task: instance."
        )
    for split in splits if splits is not None else list(decl.splits):
        if split not in decl.splits:
            report.problems.append(
                f"Dataset '{decl.name}' ({decl.source}) has no split '{split}'; it declares "
                f"{sorted(decl.splits)}."
            )
            continue
        rep = SplitReport(split=split)
        if decl.format != "semantic-png":
            rep.segment_counts = dict.fromkeys(space.names, 0)
            rep.crowd_counts = dict.fromkeys(space.names, 0)
        try:
            _CHECKS[decl.format](decl, split, space, rep)
        except Exception as e:  # missing folders, bad JSON, bad options: a split-level problem
            rep.problems.append(
                str(e)
                if isinstance(e, (FileNotFoundError, ValueError))
                else f"Dataset '{decl.name}' split '{split}': {type(e).__name__}: {e}"
            )
        if rep.num_images == 0 and not rep.problems:
            msg = "has no images; add its images, fix its paths, or remove the split."
            rep.problems.append(f"Split '{split}' of dataset '{decl.name}' ({decl.source}) {msg}")
        for value, unknown in sorted(rep.unknown_values.items()):
            kind = "category id" if decl.format != "semantic-png" else "on-disk value"
            rep.problems.append(
                f"The {kind} {value} ({unknown.pixels} pixels, e.g. {', '.join(unknown.examples)}) "
                f"is not in the label table of '{decl.name}'; add a class with that value, list "
                "it in ignore_values"
                + (", or map it with the id_map option." if kind == "on-disk value" else ".")
            )
        report.splits[split] = rep
    return report
