"""The ``coco-instances`` format: an image folder and a COCO detection JSON.

Split keys: ``images`` (folder) and ``json`` (COCO instances file). Segmentations may be
polygons, compressed RLE (``counts`` a string) or uncompressed RLE (``counts`` a list); they are
decoded with pycocotools. ``bbox`` ``[x, y, w, h]`` becomes ``boxes`` ``(x0, y0, x1, y1)``.

Options: ``image_pattern`` (default ``"{file_name}"``): the image file name from the JSON
record, with the placeholders ``{file_name}``, ``{file_stem}`` and ``{image_id}`` (e.g.
``"{image_id}_leftImg8bit.png"`` for the Cityscapes panoptic JSON). An image that is not at
``images/NAME`` is looked up by its name anywhere below ``images`` (city sub-folders).

Datasets whose annotation kind is ``boxes`` yield ``masks=None`` unless the reader is built with
``with_hidden_masks=True`` and every annotation of the JSON has a segmentation (to score weak
supervision). Annotations whose category is not a class of the label space (unknown or ignore
values) are left out; ``babelseg datasets check`` reports the unknown ones.

This module also holds the helpers the COCO panoptic reader shares (JSON loading, image lookup,
boxes from masks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from babelseg.data.declaration import DatasetDecl
from babelseg.data.image_io import read_rgb
from babelseg.data.json_file import load_json
from babelseg.data.readers.base import DatasetReader
from babelseg.data.readers.semantic_png import check_options
from babelseg.data.sample import Annotation, Sample
from babelseg.labels.space import LabelSpace

OPTION_KEYS = ("image_pattern",)


def json_records(data: Any, key: str, path: Path) -> list[dict[str, Any]]:
    """``data[key]`` as a list of mappings, or ValueError naming the file."""
    records = data.get(key) if isinstance(data, Mapping) else None
    if not isinstance(records, list) or not all(isinstance(r, Mapping) for r in records):
        raise ValueError(f"{path}: expected a list '{key}' of objects (COCO format).")
    return records


@dataclass
class CocoImages:
    """Image files of a COCO JSON resolved on disk.

    Attributes:
        records: The JSON ``images`` entries whose file exists, in JSON order.
        paths: The file of each record.
        missing: ``(record, expected path)`` for records whose file was not found.
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    missing: list[tuple[dict[str, Any], Path]] = field(default_factory=list)


def resolve_images(
    records: Sequence[Mapping[str, Any]], images_dir: Path, pattern: str = "{file_name}"
) -> CocoImages:
    """Find the file of every JSON image record below ``images_dir``.

    Args:
        records: JSON ``images`` entries (``id``, ``file_name``).
        images_dir: The split's image folder.
        pattern: File name template (``{file_name}``, ``{file_stem}``, ``{image_id}``).
    """
    out = CocoImages()
    by_name: dict[str, list[Path]] | None = None
    for rec in records:
        file_name = str(rec.get("file_name", ""))
        try:
            name = pattern.format(
                file_name=file_name, file_stem=Path(file_name).stem, image_id=rec.get("id")
            )
        except (KeyError, IndexError) as e:
            raise ValueError(
                f"Option image_pattern '{pattern}' uses an unknown placeholder {e}; use "
                "{file_name}, {file_stem} or {image_id}."
            ) from None
        path = images_dir / name
        if not path.is_file():
            if by_name is None:
                by_name = {}
                for p in images_dir.rglob("*"):
                    by_name.setdefault(p.name, []).append(p)
            hits = by_name.get(Path(name).name, [])
            if len(hits) == 1:
                path = hits[0]
        if path.is_file():
            out.records.append(dict(rec))
            out.paths.append(path)
        else:
            out.missing.append((dict(rec), images_dir / name))
    return out


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight boxes around masks.

    Args:
        masks: ``bool[N, H, W]``.
    Returns:
        ``float32[N, 4]`` ``(x0, y0, x1, y1)`` with exclusive right/bottom edges (as COCO's
        ``x + w``); all zeros for an empty mask.
    """
    boxes = np.zeros((masks.shape[0], 4), dtype=np.float32)
    for i, m in enumerate(masks):
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        if rows.size:
            boxes[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return boxes


def has_segmentation(ann: Mapping[str, Any]) -> bool:
    """True when a COCO annotation carries a non-empty ``segmentation``."""
    segm = ann.get("segmentation")
    return bool(segm) and (isinstance(segm, list) or isinstance(segm, Mapping))


def rle_runs(counts: Any) -> list[int] | None:
    """The run lengths of RLE ``counts``: an uncompressed list, or COCO's compressed string
    (decoded as pycocotools' ``rleFrString`` does); None when ``counts`` is neither. pycocotools
    decodes runs that do not add up to the mask size into garbage, so they are checked first."""
    if isinstance(counts, list):
        return [int(c) for c in counts] if all(isinstance(c, int) for c in counts) else None
    if isinstance(counts, str):
        counts = counts.encode("ascii", "replace")
    if not isinstance(counts, bytes):
        return None
    runs: list[int] = []
    p = 0
    while p < len(counts):
        x, k, more = 0, 0, True
        while more:
            if p >= len(counts) or not 48 <= counts[p] < 48 + 64:
                return None
            c = counts[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        runs.append(x + runs[-2] if len(runs) > 2 else x)
    return runs


def segmentation_problem(segm: Any, height: int, width: int) -> str | None:
    """Why a COCO segmentation cannot be decoded at ``height x width``, or None when it can."""
    if isinstance(segm, list):
        if not segm:
            return "has an empty polygon list"
        for poly in segm:
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
                return "has a polygon that is not a flat list of at least 3 (x, y) points"
        return None
    if isinstance(segm, Mapping):
        size, counts = segm.get("size"), segm.get("counts")
        if not isinstance(size, list) or len(size) != 2 or counts is None:
            return "has an RLE without 'size' [h, w] and 'counts'"
        if [int(size[0]), int(size[1])] != [height, width]:
            return f"has an RLE of size {size[0]}x{size[1]} (HxW) on a {height}x{width} image"
        runs = rle_runs(counts)
        if runs is None:
            return "has RLE counts that are not a list of integers or a COCO-compressed string"
        if any(r < 0 for r in runs) or sum(runs) != height * width:
            return (
                f"has RLE counts covering {sum(runs)} pixels (or a negative run), not the "
                f"{height}x{width} = {height * width} of its size"
            )
        return None
    return f"has a segmentation of type {type(segm).__name__} (expected polygons or RLE)"


def decode_segmentation(segm: Any, height: int, width: int) -> np.ndarray:
    """Decode polygons / compressed RLE / uncompressed RLE to ``bool[H, W]`` (pycocotools)."""
    problem = segmentation_problem(segm, height, width)
    if problem is not None:
        raise ValueError(problem)
    if isinstance(segm, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
    elif isinstance(segm["counts"], list):
        rle = mask_utils.frPyObjects(dict(segm), height, width)
    else:
        rle = dict(segm)
    return mask_utils.decode(rle).astype(bool)


def bbox_to_xyxy(bbox: Sequence[float]) -> tuple[float, float, float, float]:
    """COCO ``[x, y, w, h]`` to ``(x0, y0, x1, y1)``."""
    x, y, w, h = (float(v) for v in bbox)
    return x, y, x + w, y + h


class CocoInstancesReader(DatasetReader):
    """Reads a ``coco-instances`` split: masks (or boxes) + classes per image.

    Args:
        decl: The dataset declaration (format ``coco-instances``).
        split: Split name.
        label_space: The dataset's label space; class values are COCO category ids.
        with_hidden_masks: For ``annotation: boxes`` datasets, also decode the masks the JSON
            has (evaluation of weak supervision). Ignored for mask datasets.

    Raises:
        FileNotFoundError: the JSON or image files are missing.
        ValueError: bad JSON; mask data with annotations that lack a segmentation.
    """

    def __init__(
        self,
        decl: DatasetDecl,
        split: str,
        label_space: LabelSpace,
        *,
        with_hidden_masks: bool = False,
    ) -> None:
        super().__init__(decl, split, label_space)
        check_options(decl, OPTION_KEYS)
        spec = decl.split(split)
        where = f"{decl.source} (dataset '{decl.name}', split '{split}')"
        images_dir, self.json_path = Path(spec["images"]), Path(spec["json"])
        if not images_dir.is_dir():
            raise FileNotFoundError(f"{where}: images folder {images_dir} does not exist.")
        data = load_json(self.json_path)
        records = json_records(data, "images", self.json_path)
        anns = json_records(data, "annotations", self.json_path)
        self.images = resolve_images(
            records, images_dir, str(decl.options.get("image_pattern", "{file_name}"))
        )
        if self.images.missing:
            names = [str(p) for _, p in self.images.missing[:3]]
            raise FileNotFoundError(
                f"{where}: {len(self.images.missing)} images of {self.json_path} are not in "
                f"{images_dir}, e.g. {names}. Fix 'images' or the image_pattern option."
            )
        self.annotations: dict[Any, list[dict[str, Any]]] = {r["id"]: [] for r in records}
        for ann in anns:
            self.annotations.setdefault(ann.get("image_id"), []).append(ann)
        all_segmented = all(has_segmentation(a) for a in anns)
        boxes_only = decl.annotation == Annotation.BOXES
        if not boxes_only and not all_segmented:
            bad = [a.get("id") for a in anns if not has_segmentation(a)]
            raise ValueError(
                f"{where}: {len(bad)} annotations of {self.json_path} have no segmentation "
                f"(ids {bad[:5]}), but the dataset's annotation is "
                f"'{decl.annotation.value}'. Declare `annotation: boxes` for box-only data."
            )
        self.with_masks = not boxes_only or (with_hidden_masks and all_segmented)

    def __len__(self) -> int:
        return len(self.images.records)

    def image_ids(self) -> list[str]:
        return [p.stem for p in self.images.paths]

    def __getitem__(self, index: int) -> Sample:
        """Decode image ``index``.

        Returns:
            A Sample with ``image`` ``uint8[H, W, 3]``, ``classes`` ``int64[N]``, ``iscrowd``
            ``bool[N]``, ``boxes`` ``float32[N, 4]`` and ``masks`` ``bool[N, H, W]`` (None
            for box-only data); ``semantic`` None; ``extras["coco_image_id"]`` the JSON id.
        Raises:
            ValueError: the image size differs from the JSON, or a segmentation is invalid.
        """
        rec, path = self.images.records[index], self.images.paths[index]
        image = read_rgb(path)
        h, w = image.shape[:2]
        if (rec.get("height"), rec.get("width")) not in ((None, None), (h, w)):
            raise ValueError(
                f"Image {path} is {w}x{h} but {self.json_path} says {rec.get('width')}x"
                f"{rec.get('height')} (WxH). Use the images the JSON was made for."
            )
        classes, crowd, boxes, masks = [], [], [], []
        for ann in self.annotations.get(rec["id"], []):
            cls = self.label_space.index_of_value(int(ann.get("category_id", -1)))
            if cls is None:
                continue
            classes.append(cls)
            crowd.append(bool(ann.get("iscrowd", 0)))
            mask = None
            if self.with_masks:
                try:
                    mask = decode_segmentation(ann.get("segmentation"), h, w)
                except ValueError as e:
                    raise ValueError(
                        f"{self.json_path}: annotation {ann.get('id')} of image {path.name} {e}."
                        " Fix or remove the annotation."
                    ) from None
                masks.append(mask)
            if ann.get("bbox") is not None:
                boxes.append(bbox_to_xyxy(ann["bbox"]))
            elif mask is not None:
                boxes.append(tuple(masks_to_boxes(mask[None])[0]))
            else:
                raise ValueError(
                    f"{self.json_path}: annotation {ann.get('id')} of image {path.name} has "
                    "neither bbox nor segmentation; fix or remove it."
                )
        n = len(classes)
        return self._sample(
            image=image,
            image_id=path.stem,
            masks=(np.stack(masks) if n else np.zeros((0, h, w), bool))
            if self.with_masks
            else None,
            classes=np.asarray(classes, dtype=np.int64),
            iscrowd=np.asarray(crowd, dtype=bool),
            boxes=np.asarray(boxes, dtype=np.float32).reshape(n, 4),
            path=path,
            extras={"coco_image_id": rec["id"]},
        )
