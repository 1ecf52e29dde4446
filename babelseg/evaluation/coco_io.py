"""COCO files for scoring: panoptic PNG + JSON (ground truth and predictions) and results JSON.

COCO panoptic format (panopticapi): one RGB PNG per image whose colour encodes a segment id
``R + 256 G + 256^2 B`` (id 0 is VOID), and a JSON whose ``annotations`` hold, per image,
``image_id``, ``file_name`` (the PNG) and ``segments_info`` (``id``, ``category_id``,
``iscrowd``, ``area``, ``bbox``). Predictions are written in the same format.

COCO results format (instance segmentation): a JSON list of ``{"image_id", "category_id",
"segmentation": compressed RLE {"size": [h, w], "counts": str}, "score"}``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from babelseg.data.image_io import read_panoptic_png
from babelseg.data.json_file import load_json as _reader_load_json
from babelseg.inference.atomic_files import save_image_atomic

VOID = 0
"""Segment id of unlabelled pixels in COCO panoptic PNGs."""

MAX_SEGMENT_ID = 256**3 - 1
"""Largest segment id an RGB panoptic PNG can hold."""


# ---------------------------------------------------------------------------- JSON
def load_json(path: str | Path, *, what: str = "COCO JSON") -> Any:
    """Parse a JSON file (the readers' loader: errors name the file and the fix)."""
    return _reader_load_json(Path(path), what)


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write JSON to a temporary file next to ``path``, then rename it (no partial files)."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, default=_json_default)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays as Python numbers and lists (for ``json.dump``)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def records(data: Any, key: str, path: str | Path) -> list[dict[str, Any]]:
    """``data[key]`` as a list of dicts, or ValueError naming the file and the key."""
    recs = data.get(key) if isinstance(data, Mapping) else None
    if not isinstance(recs, list) or not all(isinstance(r, Mapping) for r in recs):
        raise ValueError(f"{path}: expected a list '{key}' of objects (COCO format).")
    return [dict(r) for r in recs]


def categories_isthing(categories: Sequence[Mapping[str, Any]]) -> dict[int, bool]:
    """``{category id: isthing}`` from COCO panoptic ``categories`` (``isthing`` 1 or 0)."""
    out: dict[int, bool] = {}
    for c in categories:
        if "id" not in c or "isthing" not in c:
            raise ValueError(
                f"Category {dict(c)} lacks 'id' or 'isthing'; panoptic categories need both "
                "(see panoptic_coco_categories.json)."
            )
        out[int(c["id"])] = int(c["isthing"]) == 1
    return out


# ---------------------------------------------------------------------------- panoptic PNG
def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Segment ids to panoptic colours.

    Args:
        ids: ``int[H, W]`` segment ids in ``0..256^3 - 1``.

    Returns:
        ``uint8[H, W, 3]`` with ``id = R + 256 G + 256^2 B``.
    """
    a = np.asarray(ids).astype(np.int64)
    if a.size and (a.min() < 0 or a.max() > MAX_SEGMENT_ID):
        raise ValueError(
            f"Segment ids must lie in 0..{MAX_SEGMENT_ID} to fit an RGB PNG; got "
            f"{int(a.min())}..{int(a.max())}."
        )
    return np.stack([a % 256, (a // 256) % 256, a // 65536], axis=-1).astype(np.uint8)


def write_panoptic_png(path: str | Path, ids: np.ndarray) -> Path:
    """Write ``int[H, W]`` segment ids as a COCO panoptic RGB PNG; returns the path."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return save_image_atomic(Image.fromarray(id_to_rgb(ids)), dest, format="PNG")


def segment_stats(ids: np.ndarray, segment_id: int) -> tuple[int, list[int]]:
    """``(area, bbox [x, y, w, h])`` of one segment of an ``int[H, W]`` id map."""
    ys, xs = np.nonzero(np.asarray(ids) == segment_id)
    if ys.size == 0:
        return 0, [0, 0, 0, 0]
    x0, y0 = int(xs.min()), int(ys.min())
    return int(ys.size), [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]


# ---------------------------------------------------------------------------- panoptic JSON
@dataclass
class PanopticJson:
    """A COCO panoptic JSON, indexed by image.

    Attributes:
        path: The JSON file.
        annotations: ``{image_id: annotation}`` (``file_name``, ``segments_info``), JSON order.
        images: The JSON ``images`` records (may be empty in prediction files).
        categories: The JSON ``categories`` records (may be empty in prediction files).
    """

    path: Path
    annotations: dict[Any, dict[str, Any]]
    images: list[dict[str, Any]] = field(default_factory=list)
    categories: list[dict[str, Any]] = field(default_factory=list)


def read_panoptic_json(path: str | Path) -> PanopticJson:
    """Read and check a COCO panoptic JSON (ground truth or predictions).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, no ``annotations`` list, an annotation without ``image_id`` /
            ``file_name`` / ``segments_info``, or two annotations for one image.
    """
    p = Path(path)
    data = load_json(p, what="COCO panoptic JSON")
    anns: dict[Any, dict[str, Any]] = {}
    for ann in records(data, "annotations", p):
        missing = [k for k in ("image_id", "file_name", "segments_info") if k not in ann]
        if missing or not isinstance(ann.get("segments_info"), list):
            raise ValueError(
                f"{p}: annotation {ann.get('image_id', '?')} lacks {missing or ['segments_info']}"
                "; every panoptic annotation needs image_id, file_name and a segments_info list."
            )
        if ann["image_id"] in anns:
            raise ValueError(f"{p}: image_id {ann['image_id']} has two annotations; keep one.")
        anns[ann["image_id"]] = ann
    images = records(data, "images", p) if "images" in data else []
    categories = records(data, "categories", p) if "categories" in data else []
    return PanopticJson(path=p, annotations=anns, images=images, categories=categories)


def read_panoptic_image(
    png_dir: str | Path, annotation: Mapping[str, Any]
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The id map and segments of one panoptic annotation.

    Args:
        png_dir: Folder holding the PNG named by ``annotation["file_name"]``.
        annotation: One entry of a panoptic JSON's ``annotations``.

    Returns:
        ``(ids int64[H, W], segments_info)``.

    Raises:
        FileNotFoundError: the PNG does not exist (the message names it and the image id).
    """
    png = Path(png_dir) / str(annotation["file_name"])
    if not png.is_file():
        raise FileNotFoundError(
            f"Panoptic PNG {png} (image_id {annotation.get('image_id')}) does not exist; check "
            "the PNG folder and the JSON's file_name."
        )
    return read_panoptic_png(png), [dict(s) for s in annotation["segments_info"]]


def iter_panoptic(
    json_path: str | Path, png_dir: str | Path
) -> Iterator[tuple[Any, np.ndarray, list[dict[str, Any]]]]:
    """Yield ``(image_id, ids int64[H, W], segments_info)`` for every annotation of a JSON."""
    pj = read_panoptic_json(json_path)
    for image_id, ann in pj.annotations.items():
        ids, segments = read_panoptic_image(png_dir, ann)
        yield image_id, ids, segments


class PanopticWriter:
    """Writes panoptic predictions as COCO panoptic PNGs plus one JSON.

    Args:
        json_path: Destination JSON (written by :meth:`write`).
        png_dir: Folder receiving one PNG per image.
        categories: COCO panoptic ``categories`` records copied into the JSON.

    Example:
        >>> w = PanopticWriter(json_path=out / "pred.json", png_dir=out / "pred",
        ...                    categories=cats)
        >>> w.add(image_id=1, ids=ids, segments=[{"id": 5, "category_id": 1}])
        >>> w.write()
    """

    def __init__(
        self,
        *,
        json_path: str | Path,
        png_dir: str | Path,
        categories: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self.json_path = Path(json_path)
        self.png_dir = Path(png_dir)
        self.categories = [dict(c) for c in categories]
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []

    def add(
        self,
        *,
        image_id: Any,
        ids: np.ndarray,
        segments: Sequence[Mapping[str, Any]],
        file_name: str | None = None,
    ) -> Path:
        """Write one image's PNG and remember its segments.

        Args:
            image_id: The COCO image id (matches the ground truth's).
            ids: ``int[H, W]`` segment ids, 0 for unlabelled pixels.
            segments: ``[{"id", "category_id"}, ...]`` (``iscrowd`` defaults to 0); ``area``
                and ``bbox`` are computed from ``ids``.
            file_name: PNG name; defaults to ``"{image_id}.png"``.

        Returns:
            The PNG written.
        """
        ids = np.asarray(ids)
        if ids.ndim != 2:
            raise ValueError(f"ids must be [H, W], got shape {ids.shape} (image {image_id}).")
        name = file_name or f"{image_id}.png"
        info = []
        for s in segments:
            sid = int(s["id"])
            if sid == VOID:
                raise ValueError(f"Image {image_id}: segment id 0 is VOID; number segments from 1.")
            area, bbox = segment_stats(ids, sid)
            info.append(
                {
                    "id": sid,
                    "category_id": int(s["category_id"]),
                    "iscrowd": int(s.get("iscrowd", 0)),
                    "area": area,
                    "bbox": bbox,
                }
            )
        path = write_panoptic_png(self.png_dir / name, ids)
        self.images.append({"id": image_id, "height": ids.shape[0], "width": ids.shape[1]})
        self.annotations.append({"image_id": image_id, "file_name": name, "segments_info": info})
        return path

    def write(self) -> Path:
        """Write the JSON (atomically) and return its path."""
        data = {
            "images": self.images,
            "annotations": self.annotations,
            "categories": self.categories,
        }
        return write_json_atomic(self.json_path, data)


# ---------------------------------------------------------------------------- results JSON
def read_results_json(path: str | Path) -> list[dict[str, Any]]:
    """Read a COCO results JSON (a list of detections).

    Accepts the list itself or ``{"annotations": [...]}``. Each entry needs ``image_id``,
    ``category_id``, ``segmentation`` and ``score``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a list of detections, or an entry lacks a key.
    """
    p = Path(path)
    data = load_json(p, what="COCO results JSON")
    if isinstance(data, Mapping) and "annotations" in data:
        data = data["annotations"]
    if not isinstance(data, list) or not all(isinstance(r, Mapping) for r in data):
        raise ValueError(
            f"{p}: a COCO results file is a JSON list of detections "
            "[{image_id, category_id, segmentation, score}, ...]."
        )
    for i, r in enumerate(data):
        missing = [k for k in ("image_id", "category_id", "segmentation", "score") if k not in r]
        if missing:
            raise ValueError(f"{p}: detection {i} lacks {missing}; add them.")
    return [dict(r) for r in data]


def _json_safe_rle(segmentation: Any) -> Any:
    """A copy of an RLE whose ``counts`` is ``str`` (pycocotools gives bytes)."""
    if isinstance(segmentation, Mapping) and isinstance(segmentation.get("counts"), bytes):
        return {"size": list(segmentation["size"]), "counts": segmentation["counts"].decode()}
    return segmentation


def write_results_json(path: str | Path, results: Sequence[Mapping[str, Any]]) -> Path:
    """Write detections as a COCO results JSON (RLE counts as text); returns the path."""
    out = []
    for r in results:
        d = dict(r)
        d["segmentation"] = _json_safe_rle(d.get("segmentation"))
        d["score"] = float(d["score"])
        d["category_id"] = int(d["category_id"])
        out.append(d)
    return write_json_atomic(path, out)
