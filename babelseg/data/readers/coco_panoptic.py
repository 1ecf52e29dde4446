"""The ``coco-panoptic`` format: images, a panoptic JSON and a folder of segment-id PNGs.

Split keys: ``images`` (folder), ``json`` (COCO panoptic file) and ``panoptic`` (PNG folder).
A PNG pixel's segment id is ``R + 256 G + 256^2 B``; id 0 is VOID. Every id in a PNG must be in
its ``segments_info`` and vice versa. Label-space values are COCO category ids (with gaps).

Options: ``image_pattern`` (see ``coco_instances``), e.g. ``"{image_id}_leftImg8bit.png"`` for
the JSON of the official Cityscapes panoptic converter.

Each Sample holds every segment of a known class (stuff included) as a mask, its class,
``iscrowd`` and segment id, boxes from the masks, and ``semantic``: each segment's pixels get its
class (crowd included), VOID and segments of unknown / ignored categories get ``IGNORE_INDEX``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from babelseg.data.declaration import DatasetDecl
from babelseg.data.image_io import read_panoptic_png, read_rgb
from babelseg.data.readers.base import DatasetReader
from babelseg.data.readers.coco_instances import (
    OPTION_KEYS,
    json_records,
    load_json,
    masks_to_boxes,
    resolve_images,
)
from babelseg.data.readers.semantic_png import check_options
from babelseg.data.sample import Sample
from babelseg.labels.space import IGNORE_INDEX, LabelSpace


@dataclass(frozen=True)
class PanopticEntry:
    """One image of a panoptic split.

    Attributes:
        image: The image file.
        png: Its panoptic PNG.
        segments: The JSON ``segments_info`` entries (``id``, ``category_id``, ``iscrowd``).
        record: The JSON ``images`` entry.
    """

    image: Path
    png: Path
    segments: tuple[dict[str, Any], ...]
    record: dict[str, Any]


@dataclass
class PanopticIndex:
    """The files of one panoptic split.

    Attributes:
        entries: Images with their PNG and segments, in JSON order.
        problems: Human-readable problems (missing images / PNGs, images without annotation).
    """

    entries: list[PanopticEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def index_split(decl: DatasetDecl, split: str) -> PanopticIndex:
    """Pair the JSON images with their files and annotations (no pixel decoding).

    Raises:
        FileNotFoundError: a folder or the JSON is missing.
        ValueError: invalid JSON.
    """
    spec = decl.split(split)
    where = f"{decl.source} (dataset '{decl.name}', split '{split}')"
    images_dir, png_dir, json_path = (
        Path(spec["images"]),
        Path(spec["panoptic"]),
        Path(spec["json"]),
    )
    for key, folder in (("images", images_dir), ("panoptic", png_dir)):
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{where}: the {key} folder {folder} does not exist. Fix '{key}' in the split "
                f"(relative paths are relative to the dataset root {decl.root})."
            )
    data = load_json(json_path, "COCO panoptic JSON")
    records = json_records(data, "images", json_path)
    anns = {a.get("image_id"): a for a in json_records(data, "annotations", json_path)}
    images = resolve_images(
        records, images_dir, str(decl.options.get("image_pattern", "{file_name}"))
    )
    index = PanopticIndex()
    for rec, expected in images.missing:
        index.problems.append(
            f"Image {expected} (JSON image id {rec.get('id')}) does not exist; fix 'images' or "
            "the image_pattern option."
        )
    for rec, path in zip(images.records, images.paths):
        ann = anns.get(rec.get("id"))
        if ann is None:
            index.problems.append(
                f"Image {path} has no annotation in {json_path}; add one or drop the image "
                "from the JSON's images."
            )
            continue
        png = png_dir / str(ann.get("file_name", ""))
        if not png.is_file():
            index.problems.append(
                f"Panoptic PNG {png} (for image {path.name}) does not exist; fix 'panoptic'."
            )
            continue
        segments = ann.get("segments_info")
        if not isinstance(segments, list):
            index.problems.append(f"{json_path}: annotation of {png.name} has no segments_info.")
            continue
        index.entries.append(PanopticEntry(path, png, tuple(segments), rec))
    return index


def match_segments(present: np.ndarray, segments: Sequence[Mapping[str, Any]], png: Path) -> None:
    """ValueError naming ``png`` when its ids and ``segments_info`` disagree.

    Args:
        present: ``int64[M]`` distinct non-VOID segment ids found in the PNG.
        segments: The JSON ``segments_info`` of that PNG.
        png: The PNG path (for the message).
    """
    listed = [int(s["id"]) for s in segments]
    if len(set(listed)) != len(listed):
        raise ValueError(f"{png}: segments_info lists a segment id twice; fix the JSON.")
    in_png = set(int(v) for v in present)
    only_png, only_json = sorted(in_png - set(listed)), sorted(set(listed) - in_png)
    parts = []
    if only_png:
        parts.append(f"segment ids {only_png[:5]} are in the PNG but not in segments_info")
    if only_json:
        parts.append(f"segment ids {only_json[:5]} are in segments_info but not in the PNG")
    if parts:
        raise ValueError(
            f"{png}: {'; '.join(parts)}. The PNG and the JSON do not belong together; re-export "
            "them with the panopticapi converters."
        )


class CocoPanopticReader(DatasetReader):
    """Reads a ``coco-panoptic`` split: segment masks, classes, crowd flags and semantic map.

    Args:
        decl: The dataset declaration (format ``coco-panoptic``).
        split: Split name.
        label_space: The dataset's label space; class values are COCO category ids.

    Raises:
        FileNotFoundError: folders, JSON, images or PNGs missing.
        ValueError: invalid JSON, images without annotation.
    """

    def __init__(self, decl: DatasetDecl, split: str, label_space: LabelSpace) -> None:
        super().__init__(decl, split, label_space)
        check_options(decl, OPTION_KEYS)
        self.index = index_split(decl, split)
        if self.index.problems:
            more = len(self.index.problems) - 3
            raise FileNotFoundError(
                f"{decl.source} (dataset '{decl.name}', split '{split}'): "
                + " ".join(self.index.problems[:3])
                + (f" ... and {more} more (see `babelseg datasets check`)." if more > 0 else "")
            )

    def __len__(self) -> int:
        return len(self.index.entries)

    def image_ids(self) -> list[str]:
        return [e.image.stem for e in self.index.entries]

    def __getitem__(self, index: int) -> Sample:
        """Decode image ``index``.

        Returns:
            A Sample with ``image`` ``uint8[H, W, 3]``, ``masks`` ``bool[N, H, W]``,
            ``classes`` ``int64[N]``, ``iscrowd`` ``bool[N]``, ``segment_ids`` ``int64[N]``,
            ``boxes`` ``float32[N, 4]`` and ``semantic`` ``int64[H, W]``, in segments_info order.
        Raises:
            ValueError: PNG and image sizes differ, or PNG ids and segments_info disagree.
        """
        entry = self.index.entries[index]
        image = read_rgb(entry.image)
        ids = read_panoptic_png(entry.png)
        self._check_same_size(
            image, entry.image, ids, entry.png, what="panoptic PNG", fix="use matching files."
        )
        present, compact = np.unique(ids, return_inverse=True)
        compact = compact.reshape(ids.shape)
        match_segments(present[present != 0], entry.segments, entry.png)
        slot = {int(v): i for i, v in enumerate(present)}
        class_of_slot = np.full(len(present), IGNORE_INDEX, dtype=np.int64)
        keep, classes, crowd, seg_ids = [], [], [], []
        for s in entry.segments:
            cls = self.label_space.index_of_value(int(s["category_id"]))
            if cls is None:
                continue
            class_of_slot[slot[int(s["id"])]] = cls
            keep.append(slot[int(s["id"])])
            classes.append(cls)
            crowd.append(bool(s.get("iscrowd", 0)))
            seg_ids.append(int(s["id"]))
        masks = compact[None] == np.asarray(keep, dtype=np.int64)[:, None, None]
        return self._sample(
            image=image,
            image_id=entry.image.stem,
            semantic=class_of_slot[compact],
            masks=masks,
            classes=np.asarray(classes, dtype=np.int64),
            iscrowd=np.asarray(crowd, dtype=bool),
            boxes=masks_to_boxes(masks),
            segment_ids=np.asarray(seg_ids, dtype=np.int64),
            path=entry.image,
            extras={"coco_image_id": entry.record.get("id")},
        )
