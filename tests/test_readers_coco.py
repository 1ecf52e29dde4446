"""COCO panoptic and COCO instances readers on hand-made files with known masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from babelseg.data.declaration import parse_declaration
from babelseg.data.image_io import read_panoptic_png
from babelseg.data.readers import CocoInstancesReader, CocoPanopticReader, make_reader
from babelseg.data.readers.coco_instances import masks_to_boxes

H, W = 6, 8
# Category ids with gaps, like COCO: 1 person (thing), 7 car (thing), 100 sky (stuff).
CATEGORIES = [
    {"id": 1, "name": "person", "isthing": 1},
    {"id": 7, "name": "car", "isthing": 1},
    {"id": 100, "name": "sky", "isthing": 0},
]


def decl_for(tmp_path: Path, fmt: str, split: dict, annotation="clean", labels=None, options=None):
    entry = {
        "name": "coco",
        "format": fmt,
        "root": str(tmp_path),
        "task": "panoptic" if fmt == "coco-panoptic" else "instance",
        "annotation": annotation,
        "labels": labels or {"card": "coco-json"},
        "splits": {"val": split},
        "options": options or {},
    }
    return parse_declaration(entry, tmp_path, source="test.yaml")


def write_image(path: Path, h: int = H, w: int = W) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(path)


# ------------------------------------------------------------------ panoptic
SKY, PERSON, CROWD = 1, 256 * 2, 5 + 256 * 256  # ids as written in R + 256 G + 256^2 B


def panoptic_ids() -> np.ndarray:
    ids = np.zeros((H, W), np.int64)  # row 5 stays VOID
    ids[0:2, :] = SKY
    ids[2:5, 0:3] = PERSON
    ids[2:5, 5:8] = CROWD
    return ids


def write_panoptic(tmp_path: Path, ids: np.ndarray, segments: list[dict]) -> dict:
    write_image(tmp_path / "images" / "im1.jpg")
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)
    (tmp_path / "pan").mkdir(exist_ok=True)
    Image.fromarray(rgb).save(tmp_path / "pan" / "im1.png")
    data = {
        "images": [{"id": 42, "file_name": "im1.jpg", "height": H, "width": W}],
        "annotations": [{"image_id": 42, "file_name": "im1.png", "segments_info": segments}],
        "categories": CATEGORIES,
    }
    (tmp_path / "pan.json").write_text(json.dumps(data))
    return {"images": "images", "json": "pan.json", "panoptic": "pan"}


SEGMENTS = [
    {"id": SKY, "category_id": 100, "iscrowd": 0},
    {"id": PERSON, "category_id": 1, "iscrowd": 0},
    {"id": CROWD, "category_id": 1, "iscrowd": 1},
]


def test_panoptic_png_ids(tmp_path):
    write_panoptic(tmp_path, panoptic_ids(), SEGMENTS)
    np.testing.assert_array_equal(read_panoptic_png(tmp_path / "pan" / "im1.png"), panoptic_ids())


def test_panoptic_reader_masks_classes_crowd_semantic(tmp_path):
    split = write_panoptic(tmp_path, panoptic_ids(), SEGMENTS)
    reader = make_reader(decl_for(tmp_path, "coco-panoptic", split), "val")
    assert isinstance(reader, CocoPanopticReader)
    assert reader.label_space.names == ["person", "car", "sky"]
    assert reader.image_ids() == ["im1"]
    s = reader[0]
    ids = panoptic_ids()
    np.testing.assert_array_equal(
        s.masks, ids[None] == np.array([SKY, PERSON, CROWD])[:, None, None]
    )
    np.testing.assert_array_equal(s.classes, [2, 0, 0])  # indices, not category ids
    np.testing.assert_array_equal(s.iscrowd, [False, False, True])
    np.testing.assert_array_equal(s.segment_ids, [SKY, PERSON, CROWD])
    np.testing.assert_array_equal(s.boxes, [[0, 0, 8, 2], [0, 2, 3, 5], [5, 2, 8, 5]])
    expected = np.full((H, W), 255)
    expected[0:2] = 2
    expected[2:5, 0:3] = 0
    expected[2:5, 5:8] = 0  # crowd pixels keep their class
    np.testing.assert_array_equal(s.semantic, expected)
    assert s.extras["coco_image_id"] == 42 and s.image.shape == (H, W, 3)


def test_panoptic_unknown_category_is_left_out(tmp_path):
    segments = [dict(SEGMENTS[0]), dict(SEGMENTS[1], category_id=55), dict(SEGMENTS[2])]
    split = write_panoptic(tmp_path, panoptic_ids(), segments)
    s = make_reader(decl_for(tmp_path, "coco-panoptic", split), "val")[0]
    np.testing.assert_array_equal(s.segment_ids, [SKY, CROWD])
    assert (s.semantic[2:5, 0:3] == 255).all()


@pytest.mark.parametrize(
    "segments, message",
    [
        (SEGMENTS[:2], r"\[65541\] are in the PNG but not in segments_info"),
        (SEGMENTS + [{"id": 9, "category_id": 7, "iscrowd": 0}], r"\[9\] are in segments_info"),
    ],
)
def test_panoptic_id_mismatch_names_the_file(tmp_path, segments, message):
    split = write_panoptic(tmp_path, panoptic_ids(), segments)
    reader = make_reader(decl_for(tmp_path, "coco-panoptic", split), "val")
    with pytest.raises(ValueError, match=r"im1\.png.*" + message):
        reader[0]


def test_panoptic_image_without_annotation(tmp_path):
    split = write_panoptic(tmp_path, panoptic_ids(), SEGMENTS)
    data = json.loads((tmp_path / "pan.json").read_text())
    data["images"].append({"id": 43, "file_name": "im2.jpg", "height": H, "width": W})
    (tmp_path / "pan.json").write_text(json.dumps(data))
    write_image(tmp_path / "images" / "im2.jpg")
    with pytest.raises(FileNotFoundError, match=r"im2\.jpg has no annotation"):
        make_reader(decl_for(tmp_path, "coco-panoptic", split), "val")


# ------------------------------------------------------------------ instances
def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE: run lengths in column-major order, starting with zeros."""
    flat = mask.flatten(order="F").astype(np.uint8)
    counts, current, run = [], 0, 0
    for v in flat:
        if v != current:
            counts.append(run)
            current, run = v, 0
        run += 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


POLY_MASK = np.zeros((H, W), bool)
POLY_MASK[1:3, 1:4] = True  # pycocotools fills the polygon (1,1)-(4,3) as x 1..3, y 1..2
RLE_MASK = np.zeros((H, W), bool)
RLE_MASK[2:5, 5:7] = True
CROWD_MASK = np.zeros((H, W), bool)
CROWD_MASK[4:6, 0:4] = True


def write_instances(tmp_path: Path, with_segmentation: bool = True) -> dict:
    write_image(tmp_path / "images" / "a.png")
    write_image(tmp_path / "images" / "b.png")
    compressed = mask_utils.encode(np.asfortranarray(RLE_MASK.astype(np.uint8)))
    compressed["counts"] = compressed["counts"].decode("ascii")
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [1, 1, 3, 2],
         "segmentation": [[1, 1, 4, 1, 4, 3, 1, 3]], "area": 6},
        {"id": 2, "image_id": 1, "category_id": 7, "iscrowd": 0, "bbox": [5, 2, 2, 3],
         "segmentation": compressed, "area": 6},
        {"id": 3, "image_id": 1, "category_id": 1, "iscrowd": 1, "bbox": [0, 4, 4, 2],
         "segmentation": uncompressed_rle(CROWD_MASK), "area": 8},
    ]  # fmt: skip
    if not with_segmentation:
        for a in anns:
            a.pop("segmentation")
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "height": H, "width": W},
            {"id": 2, "file_name": "b.png", "height": H, "width": W},
        ],
        "annotations": anns,
        "categories": [{"id": 1, "name": "person"}, {"id": 7, "name": "car"}],
    }
    (tmp_path / "inst.json").write_text(json.dumps(data))
    return {"images": "images", "json": "inst.json"}


def test_instances_polygon_and_rle(tmp_path):
    split = write_instances(tmp_path)
    reader = make_reader(decl_for(tmp_path, "coco-instances", split), "val")
    assert isinstance(reader, CocoInstancesReader)
    assert reader.label_space.thing_mask.tolist() == [True, True]  # no isthing: things
    assert reader.image_ids() == ["a", "b"]
    s = reader[0]
    np.testing.assert_array_equal(s.masks, np.stack([POLY_MASK, RLE_MASK, CROWD_MASK]))
    np.testing.assert_array_equal(s.classes, [0, 1, 0])
    np.testing.assert_array_equal(s.iscrowd, [False, False, True])
    np.testing.assert_array_equal(s.boxes, [[1, 1, 4, 3], [5, 2, 7, 5], [0, 4, 4, 6]])
    np.testing.assert_array_equal(masks_to_boxes(s.masks), s.boxes)  # bbox agrees with masks
    assert s.semantic is None and s.segment_ids is None
    empty = reader[1]
    assert empty.masks.shape == (0, H, W) and empty.boxes.shape == (0, 4)


def test_instances_boxes_only_and_hidden_masks(tmp_path):
    split = write_instances(tmp_path)
    decl = decl_for(tmp_path, "coco-instances", split, annotation="boxes")
    s = make_reader(decl, "val")[0]
    assert s.masks is None
    np.testing.assert_array_equal(s.boxes[1], [5, 2, 7, 5])
    hidden = make_reader(decl, "val", with_hidden_masks=True)[0]
    np.testing.assert_array_equal(hidden.masks[1], RLE_MASK)
    # JSON without segmentation: fine for boxes data (no hidden masks to give) ...
    write_instances(tmp_path, with_segmentation=False)
    assert make_reader(decl, "val", with_hidden_masks=True)[0].masks is None
    # ... an error for mask data.
    with pytest.raises(ValueError, match=r"3 annotations of .*inst\.json have no segmentation"):
        make_reader(decl_for(tmp_path, "coco-instances", split), "val")


def test_instances_image_pattern_and_missing_images(tmp_path):
    split = write_instances(tmp_path)
    (tmp_path / "images" / "a.png").rename(tmp_path / "images" / "a_left.png")
    with pytest.raises(FileNotFoundError, match=r"1 images .*a\.png"):
        make_reader(decl_for(tmp_path, "coco-instances", split), "val")
    (tmp_path / "images" / "b.png").rename(tmp_path / "images" / "b_left.png")
    (tmp_path / "images" / "sub").mkdir()
    (tmp_path / "images" / "b_left.png").rename(tmp_path / "images" / "sub" / "b_left.png")
    decl = decl_for(
        tmp_path, "coco-instances", split, options={"image_pattern": "{file_stem}_left.png"}
    )
    reader = make_reader(decl, "val")
    assert reader.image_ids() == ["a_left", "b_left"]
    assert reader[1].path.endswith("sub/b_left.png")  # found below the images folder
