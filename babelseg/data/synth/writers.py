"""Writers for the real on-disk formats: images, semantic label PNGs, COCO panoptic, COCO instances.

- semantic-png: one label PNG per image, grey ``L`` (8 bit), palette ``P`` (values are palette
  indices) or 16-bit ``I;16``; optional ``reduce_zero_label`` encoding (0 = unlabelled, k+1).
- coco-panoptic: RGB PNG per image with segment id = R + 256 G + 256^2 B (0 = VOID), and a JSON
  with ``images``, ``annotations`` (``segments_info`` with ``id``, ``category_id``, ``area``,
  ``bbox`` [x, y, w, h], ``iscrowd``) and ``categories`` (``isthing``).
- coco-instances: a JSON with ``annotations`` (``bbox``, ``area``, ``iscrowd`` and, when masks
  are written, ``segmentation`` as compressed RLE from ``pycocotools.mask.encode``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image
from pycocotools import mask as mask_utils

from babelseg.data.synth.annotate import Annotation
from babelseg.data.synth.views import DatasetView
from babelseg.labels.space import IGNORE_INDEX

VOID_COLOR = (224, 224, 192)
"""Palette colour of the unlabelled value in palette PNGs (as in Pascal VOC)."""


def save_image(path: Path, image: np.ndarray, *, image_format: str, quality: int) -> None:
    """Save ``uint8[H, W, 3]`` RGB as PNG or JPEG (deterministic bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(image)
    if image_format == "jpg":
        im.save(path, format="JPEG", quality=quality)
    else:
        im.save(path, format="PNG")


def disk_values(view: DatasetView) -> np.ndarray:
    """``int64[256]``: label index -> on-disk value of a semantic PNG (index 255 = unlabelled)."""
    enc = view.encoding
    table = np.full(256, enc["unlabelled_value"], np.int64)
    for i, lab in enumerate(view.labels):
        table[i] = lab.value + 1 if enc["reduce_zero_label"] else lab.value
    return table


def save_semantic_png(path: Path, semantic: np.ndarray, view: DatasetView) -> None:
    """Save a label map.

    Args:
        path: Output ``.png`` path.
        semantic: ``uint8[H, W]`` label indices, ``IGNORE_INDEX`` where unlabelled.
        view: The dataset view (its ``encoding`` decides values and PNG mode).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = disk_values(view)[semantic]
    mode = view.encoding["png_mode"]
    if mode == "I;16":
        Image.fromarray(raw.astype(np.uint16)).save(path, format="PNG")
        return
    im = Image.fromarray(raw.astype(np.uint8))
    if mode == "P":
        palette = np.zeros((256, 3), np.uint8)
        palette[view.encoding["unlabelled_value"]] = VOID_COLOR
        space = view.label_space()
        for i, lab in enumerate(view.labels):
            palette[lab.value] = space.color_of(i)
        im.putpalette(palette.ravel().tolist())
    im.save(path, format="PNG")


def _bbox(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return [int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1)]


def panoptic_segments(
    ann: Annotation, view: DatasetView
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The panoptic PNG and ``segments_info`` of one image.

    Segment ids are ``category_id * 1000 + k`` (k = 1..N), as the Cityscapes converter does.

    Returns:
        ``uint8[H, W, 3]`` id image and the ``segments_info`` list.
    """
    ids = np.zeros(len(ann.segments) + 1, np.int64)
    infos = []
    for seg in ann.segments:
        cat = view.labels[seg.label].value
        ids[seg.id] = cat * 1000 + seg.id
        mask = ann.seg_map == seg.id
        infos.append(
            {
                "id": int(ids[seg.id]),
                "category_id": int(cat),
                "area": int(mask.sum()),
                "bbox": _bbox(mask),
                "iscrowd": int(seg.iscrowd),
            }
        )
    pan = ids[ann.seg_map]
    rgb = np.stack([pan % 256, (pan // 256) % 256, pan // 65536], axis=-1).astype(np.uint8)
    return rgb, infos


def instance_annotations(
    ann: Annotation, view: DatasetView, *, with_masks: bool
) -> list[dict[str, Any]]:
    """COCO instance annotations (without ``id`` and ``image_id``) of the thing segments."""
    out = []
    for seg in ann.segments:
        if not seg.is_thing:
            continue
        mask = ann.seg_map == seg.id
        entry: dict[str, Any] = {
            "category_id": int(view.labels[seg.label].value),
            "bbox": _bbox(mask),
            "area": int(mask.sum()),
            "iscrowd": int(seg.iscrowd),
        }
        if with_masks:
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            entry["segmentation"] = {
                "size": [int(s) for s in rle["size"]],
                "counts": rle["counts"].decode("ascii"),
            }
        out.append(entry)
    return out


def coco_categories(view: DatasetView) -> list[dict[str, Any]]:
    space = view.label_space()
    return [
        {
            "id": int(lab.value),
            "name": lab.name,
            "supercategory": "thing" if lab.is_thing else "stuff",
            "isthing": int(lab.is_thing),
            "color": list(space.color_of(i)),
        }
        for i, lab in enumerate(view.labels)
    ]


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":")))


def write_label_space(path: Path, view: DatasetView) -> None:
    """The dataset's ``labels.yaml`` (schema of ``LabelSpace.from_dict``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = view.label_space().to_dict()
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def unlabelled_note(view: DatasetView) -> str:
    """How unlabelled pixels are stored, for the README."""
    if view.format != "semantic-png":
        return "VOID (id 0)"
    enc = view.encoding
    if enc["reduce_zero_label"]:
        return "0 (labels are stored as value + 1: reduce_zero_label)"
    return str(enc["unlabelled_value"] if enc["unlabelled_value"] != IGNORE_INDEX else "255")
