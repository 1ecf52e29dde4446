"""semantic-png reader and label-PNG decoding on hand-made files with known values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from babelseg.data.declaration import parse_declaration
from babelseg.data.image_io import image_size, read_label_png, read_rgb
from babelseg.data.readers import FORMAT_READERS, SemanticPngReader, make_reader
from babelseg.data.readers.semantic_png import value_table
from babelseg.labels.space import LabelSpace

LABELS = {"classes": [{"name": "road", "value": 7}, {"name": "car", "value": 26}, "sky"]}
# sky has value 2 (its index); 255 is the default ignore value.


def write_rgb(path: Path, h: int = 3, w: int = 4, value: int = 100) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((h, w, 3), value, dtype=np.uint8)
    arr[0, 0] = (10, 20, 30)
    Image.fromarray(arr).save(path)
    return arr


def write_grey(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8), mode="L").save(path)


def decl_for(tmp_path: Path, split: dict, labels=LABELS, options=None, name="ds"):
    entry = {
        "name": name,
        "format": "semantic-png",
        "root": str(tmp_path),
        "labels": labels,
        "splits": {"train": split},
        "options": options or {},
    }
    return parse_declaration(entry, tmp_path, source="test.yaml")


GREY = np.array([[7, 7, 26, 2], [0, 255, 26, 7], [2, 2, 2, 99]])
GREY_EXPECTED = np.array([[0, 0, 1, 2], [255, 255, 1, 0], [2, 2, 2, 255]])


def test_grey_labels_map_through_label_space(tmp_path):
    img = write_rgb(tmp_path / "img" / "a.png")
    Image.fromarray(np.full((3, 4, 3), 90, np.uint8)).save(tmp_path / "img" / "b.jpg")
    write_grey(tmp_path / "lab" / "a.png", GREY)
    write_grey(tmp_path / "lab" / "b.png", np.full((3, 4), 26))
    decl = decl_for(tmp_path, {"images": "img", "labels": "lab"})
    reader = make_reader(decl, "train")
    assert isinstance(reader, SemanticPngReader)
    assert FORMAT_READERS["semantic-png"] is SemanticPngReader
    assert reader.image_ids() == ["a", "b"]
    s = reader[0]
    assert s.image.dtype == np.uint8 and s.image.shape == (3, 4, 3)
    np.testing.assert_array_equal(s.image, img)
    np.testing.assert_array_equal(s.semantic, GREY_EXPECTED)  # 0 and 99 unknown -> ignore
    assert s.semantic.dtype == np.int64
    assert s.masks is None and s.image_id == "a" and s.path.endswith("a.png")
    assert s.task.value == "semantic" and s.dataset == "ds"
    s = reader[1]
    np.testing.assert_array_equal(s.semantic, np.ones((3, 4)))
    assert np.abs(s.image.astype(int) - 90).max() <= 2  # JPEG, uniform


def test_sixteen_bit_labels(tmp_path):
    raw = np.array([[1000, 40000], [65535, 3]], dtype=np.uint16)
    Image.fromarray(raw).save(tmp_path / "l16.png")
    assert Image.open(tmp_path / "l16.png").mode.startswith("I")
    got = read_label_png(tmp_path / "l16.png")
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, raw)
    space = LabelSpace.from_dict(
        {"classes": [{"name": "a", "value": 1000}, {"name": "b", "value": 40000}]}
    )
    np.testing.assert_array_equal(space.encode(got), [[0, 1], [255, 255]])


def test_palette_png_reads_indices_not_colours(tmp_path):
    idx = np.array([[0, 1], [2, 3]], dtype=np.uint8)
    im = Image.fromarray(idx, mode="P")
    im.putpalette([0, 0, 0, 200, 10, 10, 10, 200, 10, 10, 10, 200] + [0] * (256 * 3 - 12))
    im.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    np.testing.assert_array_equal(read_label_png(tmp_path / "p.png"), idx)


def test_rgb_label_is_an_error_that_says_so(tmp_path):
    write_rgb(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match=r"rgb\.png has mode 'RGB'.*single-channel"):
        read_label_png(tmp_path / "rgb.png")


def test_missing_and_corrupt_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        read_rgb(tmp_path / "nothere.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"bad\.png"):
        read_label_png(tmp_path / "bad.png")
    write_rgb(tmp_path / "ok.png", h=5, w=7)
    assert image_size(tmp_path / "ok.png") == (5, 7)


def test_reduce_zero_label_and_id_map(tmp_path):
    space = LabelSpace.from_names(["a", "b", "c"])  # values 0, 1, 2
    table, known = value_table(space, {"reduce_zero_label": True})
    np.testing.assert_array_equal(table[[0, 1, 2, 3, 4, 255]], [255, 0, 1, 2, 255, 255])
    np.testing.assert_array_equal(known[[0, 1, 3, 4, 255]], [True, True, True, False, True])
    # id_map keys are on-disk values; targets: class name, class value, null (ignore).
    table, known = value_table(space, {"id_map": {7: "c", "8": 0, 9: None}})
    np.testing.assert_array_equal(table[[7, 8, 9, 1, 5]], [2, 0, 255, 1, 255])
    np.testing.assert_array_equal(known[[7, 8, 9, 1, 5]], [True, True, True, True, False])
    with pytest.raises(ValueError, match="id_map maps 7 to 42"):
        value_table(space, {"id_map": {7: 42}})
    with pytest.raises(ValueError, match="No class 'nope'"):
        value_table(space, {"id_map": {7: "nope"}})


def test_reduce_zero_label_reader(tmp_path):
    write_rgb(tmp_path / "img" / "x.png", h=1, w=4)
    write_grey(tmp_path / "lab" / "x.png", np.array([[0, 1, 3, 255]]))
    decl = decl_for(
        tmp_path,
        {"images": "img", "labels": "lab"},
        labels={"classes": ["a", "b", "c"]},
        options={"reduce_zero_label": True},
    )
    np.testing.assert_array_equal(make_reader(decl, "train")[0].semantic, [[255, 0, 2, 255]])


def test_patterns_subfolders_and_split_file(tmp_path):
    # Cityscapes layout: city sub-folders, suffixes after the id.
    for city, stem in [("aachen", "aachen_01"), ("bonn", "bonn_02"), ("bonn", "bonn_03")]:
        write_rgb(tmp_path / "left" / city / f"{stem}_leftImg8bit.png")
        write_grey(tmp_path / "gt" / city / f"{stem}_gtFine_labelIds.png", np.full((3, 4), 7))
    (tmp_path / "left" / "bonn" / "notes.txt").write_text("not an image")
    split = {
        "images": "left",
        "labels": "gt",
        "image_pattern": "{stem}_leftImg8bit.png",
        "label_pattern": "{stem}_gtFine_labelIds.png",
    }
    reader = make_reader(decl_for(tmp_path, split), "train")
    assert reader.image_ids() == ["aachen_01", "bonn_02", "bonn_03"]
    assert reader[2].path.endswith("bonn/bonn_03_leftImg8bit.png")
    assert (reader[2].semantic == 0).all()
    (tmp_path / "val.txt").write_text("# val\nbonn/bonn_03\n\naachen_01\n")
    reader = make_reader(decl_for(tmp_path, {**split, "split_file": "val.txt"}), "train")
    assert reader.image_ids() == ["bonn_03", "aachen_01"]
    (tmp_path / "bad.txt").write_text("bonn_09\n")
    with pytest.raises(FileNotFoundError, match="bonn_09"):
        make_reader(decl_for(tmp_path, {**split, "split_file": "bad.txt"}), "train")
    with pytest.raises(ValueError, match="exactly once"):
        make_reader(decl_for(tmp_path, {**split, "image_pattern": "x.png"}), "train")


def test_size_mismatch_names_both_files(tmp_path):
    write_rgb(tmp_path / "img" / "a.png", h=3, w=4)
    write_grey(tmp_path / "lab" / "a.png", np.zeros((2, 4)))
    reader = make_reader(decl_for(tmp_path, {"images": "img", "labels": "lab"}), "train")
    with pytest.raises(ValueError, match=r"img/a\.png is 4x3 but its label .*lab/a\.png is 4x2"):
        reader[0]


def test_images_without_labels_listed(tmp_path):
    for stem in ("a", "b", "c"):
        write_rgb(tmp_path / "img" / f"{stem}.png")
    write_grey(tmp_path / "lab" / "b.png", np.zeros((3, 4)))
    with pytest.raises(FileNotFoundError, match=r"2 images have no label file: a, c"):
        make_reader(decl_for(tmp_path, {"images": "img", "labels": "lab"}), "train")


def test_bad_options_and_folders(tmp_path):
    write_rgb(tmp_path / "img" / "a.png")
    write_grey(tmp_path / "lab" / "a.png", np.zeros((3, 4)))
    split = {"images": "img", "labels": "lab"}
    with pytest.raises(ValueError, match=r"unknown options \['reduce_zero'\]"):
        make_reader(decl_for(tmp_path, split, options={"reduce_zero": True}), "train")
    with pytest.raises(FileNotFoundError, match="labels folder .*nolab"):
        make_reader(decl_for(tmp_path, {"images": "img", "labels": "nolab"}), "train")
    with pytest.raises(ValueError, match="no split 'val'"):
        make_reader(decl_for(tmp_path, split), "val")
