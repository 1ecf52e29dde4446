"""`babelseg datasets check` / `list`, `check_dataset` and the built-in label cards."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from babelseg.cli import datasets_cmd
from babelseg.data.cards import CARDS, build_card
from babelseg.data.check import check_dataset
from babelseg.data.declaration import load_declarations, parse_declaration
from babelseg.data.label_source import resolve_label_space
from babelseg.data.sample import Task

H, W = 3, 4
LABELS = {"classes": [{"name": "road", "value": 7}, {"name": "car", "value": 26}, "sky"]}


def write_rgb(path: Path, h: int = H, w: int = W) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 50, np.uint8)).save(path)


def write_grey(path: Path, values) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, dtype=np.uint8), mode="L").save(path)


def decl(tmp_path: Path, fmt: str, splits: dict, labels=None, annotation="clean", **extra):
    entry = {
        "name": "ds",
        "format": fmt,
        "root": str(tmp_path),
        "annotation": annotation,
        "labels": labels if labels is not None else LABELS,
        "splits": splits,
        **extra,
    }
    return parse_declaration(entry, tmp_path, source="test.yaml")


def semantic_fixture(tmp_path: Path) -> dict:
    """a: good (unknown 0 and 99), b: good (unknown 0), c: size mismatch, d: no label,
    e: corrupt label."""
    for stem in "abcde":
        write_rgb(tmp_path / "img" / f"{stem}.png")
    write_grey(tmp_path / "lab" / "a.png", [[7, 7, 26, 2], [0, 255, 26, 7], [2, 2, 2, 99]])
    b = np.full((H, W), 26)
    b[0, 0] = 0
    write_grey(tmp_path / "lab" / "b.png", b)
    write_grey(tmp_path / "lab" / "c.png", np.zeros((2, W)))
    (tmp_path / "lab" / "e.png").write_bytes(b"\x89PNG broken")
    return {"train": {"images": "img", "labels": "lab"}}


def test_check_semantic_counts_unknowns_and_problems(tmp_path):
    report = check_dataset(decl(tmp_path, "semantic-png", semantic_fixture(tmp_path)))
    assert not report.ok and report.class_names == ["road", "car", "sky"]
    rep = report.splits["train"]
    assert (rep.num_images, rep.num_read) == (5, 2)
    assert rep.pixel_counts == {"road": 3, "car": 13, "sky": 4}
    assert rep.segment_counts is None and rep.crowd_counts is None
    assert {v: (u.pixels, u.examples) for v, u in rep.unknown_values.items()} == {
        0: (2, ["a.png", "b.png"]),
        99: (1, ["a.png"]),
    }
    problems = "\n".join(rep.problems)
    assert len(rep.problems) == 5
    assert "d.png has no label file" in problems
    assert "img/c.png is 4x3 but" in problems and "lab/c.png is 4x2" in problems
    assert "lab/e.png" in problems
    assert "on-disk value 0 (2 pixels, e.g. a.png, b.png)" in problems
    assert "id_map" in problems  # says what to do
    data = report.to_dict()
    assert json.loads(json.dumps(data))["splits"]["train"]["unknown_values"]["99"]["pixels"] == 1


def test_check_missing_folder_and_unknown_split_are_problems(tmp_path):
    d = decl(tmp_path, "semantic-png", {"val": {"images": "nope", "labels": "nope2"}})
    report = check_dataset(d, splits=["val", "test"])
    assert report.problems == ["Dataset 'ds' (test.yaml) has no split 'test'; it declares ['val']."]
    assert "images folder" in report.splits["val"].problems[0] and not report.ok
    bad_space = decl(
        tmp_path, "semantic-png", {"val": {"images": "a", "labels": "b"}}, labels={"card": "nope"}
    )
    report = check_dataset(bad_space)
    assert "unknown label card 'nope'" in report.problems[0] and not report.splits


def write_panoptic_png(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(path)


def test_check_panoptic(tmp_path):
    h, w = 6, 8
    ids = np.zeros((h, w), np.int64)
    ids[0:2] = 1  # sky, 16 px
    ids[2:5, 0:3] = 300  # person, 9 px
    ids[2:5, 5:8] = 70000  # person crowd, 9 px
    ids[5, 0:2] = 4  # category 55 (not in the label space), 2 px
    segs = [
        {"id": 1, "category_id": 100, "iscrowd": 0},
        {"id": 300, "category_id": 1, "iscrowd": 0},
        {"id": 70000, "category_id": 1, "iscrowd": 1},
        {"id": 4, "category_id": 55, "iscrowd": 0},
    ]
    for name in ("p1", "p2"):
        write_rgb(tmp_path / "images" / f"{name}.jpg", h, w)
        write_panoptic_png(tmp_path / "pan" / f"{name}.png", ids)
    data = {
        "images": [{"id": i, "file_name": f"p{i}.jpg", "height": h, "width": w} for i in (1, 2)],
        "annotations": [
            {"image_id": 1, "file_name": "p1.png", "segments_info": segs},
            {"image_id": 2, "file_name": "p2.png", "segments_info": segs[:3]},  # id 4 unlisted
        ],
        "categories": [
            {"id": 1, "name": "person", "isthing": 1},
            {"id": 7, "name": "car", "isthing": 1},
            {"id": 100, "name": "sky", "isthing": 0},
        ],
    }
    (tmp_path / "pan.json").write_text(json.dumps(data))
    splits = {"val": {"images": "images", "json": "pan.json", "panoptic": "pan"}}
    rep = check_dataset(decl(tmp_path, "coco-panoptic", splits, labels={"card": "coco-json"}))
    rep = rep.splits["val"]
    assert (rep.num_images, rep.num_read) == (2, 1)
    assert rep.segment_counts == {"person": 1, "car": 0, "sky": 1}
    assert rep.crowd_counts == {"person": 1, "car": 0, "sky": 0}
    assert rep.pixel_counts == {"person": 18, "car": 0, "sky": 16}
    assert {v: (u.pixels, u.examples) for v, u in rep.unknown_values.items()} == {
        55: (2, ["p1.png"])
    }
    assert len(rep.problems) == 2
    assert "p2.png: segment ids [4] are in the PNG but not in segments_info" in rep.problems[0]
    assert rep.problems[1].startswith("The category id 55 (2 pixels")


def ann(id_: int, image_id: int, category_id: int, iscrowd: int, **extra) -> dict:
    """A COCO annotation with a 2x2 box."""
    return {"id": id_, "image_id": image_id, "category_id": category_id, "iscrowd": iscrowd,
            "bbox": [0, 0, 2, 2], **extra}  # fmt: skip


def test_check_instances(tmp_path):
    write_rgb(tmp_path / "images" / "a.png", 6, 8)
    write_rgb(tmp_path / "images" / "b.png", 6, 8)
    poly = [[1, 1, 4, 1, 4, 3, 1, 3]]
    anns = [
        ann(1, 1, 1, 0, segmentation=poly),
        ann(2, 1, 1, 1, segmentation={"size": [6, 8], "counts": [0, 2, 4, 2, 40]}),
        ann(3, 1, 9, 0, area=5),  # category 9 is not in the label space
        ann(4, 1, 7, 0),  # no segmentation
        ann(5, 1, 7, 0, segmentation={"size": [5, 8], "counts": "abc"}),  # wrong RLE size
        ann(6, 2, 7, 0, segmentation=poly),  # image 2's JSON size is wrong
    ]
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "height": 6, "width": 8},
            {"id": 2, "file_name": "b.png", "height": 7, "width": 8},
            {"id": 3, "file_name": "gone.png", "height": 6, "width": 8},
        ],
        "annotations": anns,
        "categories": [{"id": 1, "name": "person"}, {"id": 7, "name": "car"}],
    }
    (tmp_path / "inst.json").write_text(json.dumps(data))
    splits = {"val": {"images": "images", "json": "inst.json"}}
    labels = {"card": "coco-json"}
    rep = check_dataset(decl(tmp_path, "coco-instances", splits, labels=labels)).splits["val"]
    assert (rep.num_images, rep.num_read) == (3, 0)
    assert rep.segment_counts == {"person": 1, "car": 2} and rep.crowd_counts == {
        "person": 1,
        "car": 0,
    }
    assert rep.pixel_counts is None
    assert {v: u.pixels for v, u in rep.unknown_values.items()} == {9: 5}
    text = "\n".join(rep.problems)
    assert len(rep.problems) == 5, text
    assert "gone.png (JSON image id 3) does not exist" in text
    assert "annotation 4 of image a.png has no segmentation" in text
    assert "annotation 5 of image a.png has an RLE of size 5x8 (HxW) on a 6x8 image" in text
    assert "b.png is 8x6 but" in text and "says 8x7" in text
    # Boxes-only data: annotations without segmentation are fine.
    rep = check_dataset(decl(tmp_path, "coco-instances", splits, labels=labels, annotation="boxes"))
    text = "\n".join(rep.splits["val"].problems)
    assert "no segmentation" not in text and "RLE" not in text


# ------------------------------------------------------------------ cards
def test_cards(tmp_path):
    assert {"ade20k-150", "cityscapes", "coco-json"} <= set(CARDS)
    splits = {"val": {"images": "i", "labels": "l"}}
    rows = ["Idx,Ratio,Train,Val,Stuff,Name"]
    for i in range(1, 151):
        name = {
            59: "screen;door;screen",
            65: "coffee;table;cocktail;table",
            131: "screen;silver;screen",
            13: "person;individual",
        }.get(i, f"class{i}")
        rows.append(f"{i},0.01,1,1,{int(i != 13)},{name}")
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "objectInfo150.csv").write_text("\n".join(rows) + "\n")
    ade = resolve_label_space(
        decl(
            tmp_path,
            "semantic-png",
            splits,
            labels={"card": "ade20k-150", "file": "meta/objectInfo150.csv"},
        )
    )
    assert len(ade) == 150 and ade.names[0] == "class1" and ade.names[12] == "person"
    assert (ade.names[58], ade.names[64], ade.names[130]) == (
        "screen door",
        "coffee table",
        "screen",
    )
    assert ade.thing_mask.sum() == 1 and ade.thing_mask[12]
    np.testing.assert_array_equal(ade.encode(np.array([0, 1, 150, 255])), [255, 0, 149, 255])
    assert ade.unknown_values(np.array([0, 1, 150, 255])) == {}
    with pytest.raises(FileNotFoundError, match="objectInfo150.csv"):
        resolve_label_space(decl(tmp_path, "semantic-png", splits, labels={"card": "ade20k-150"}))

    d = decl(tmp_path, "semantic-png", splits, labels={"card": "cityscapes"})
    train = resolve_label_space(d)
    assert len(train) == 19 and train.value_of(18) == 18 and train.ignore_values == (255,)
    assert [train.names[i] for i in np.flatnonzero(train.thing_mask)] == [
        "person",
        "rider",
        "car",
        "truck",
        "bus",
        "train",
        "motorcycle",
        "bicycle",
    ]
    label = build_card({"card": "cityscapes", "ids": "label"}, d)
    np.testing.assert_array_equal(
        label.encode(np.array([7, 8, 26, 33, 0, 1, 6, 34])), [0, 1, 13, 18, 255, 255, 255, 255]
    )
    assert label.unknown_values(np.array([0, 3, 15, 7, 33, 34, 255])) == {34: 1}
    with pytest.raises(ValueError, match="`ids: train`"):
        build_card({"card": "cityscapes", "ids": "bogus"}, d)
    with pytest.raises(ValueError, match=r"valid cards: \['ade20k-150', 'ade20k-847', "):
        build_card({"card": "mapillary"}, d)

    cats = [{"id": 3, "name": "car", "isthing": 1}, {"id": 90, "name": "sky", "isthing": 0}]
    (tmp_path / "cats.json").write_text(json.dumps(cats))
    coco = build_card({"card": "coco-json", "file": "cats.json"}, d)
    assert coco.names == ["car", "sky"] and coco.value_of(1) == 90
    assert coco.thing_mask.tolist() == [True, False] and coco.index_of_value(90) == 1
    (tmp_path / "second.json").write_text(json.dumps({"categories": [{"id": 5, "name": "cow"}]}))
    two = {
        "train": {"images": "i", "json": "first.json"},
        "val": {"images": "i", "json": "second.json"},
    }
    inst = decl(tmp_path, "coco-instances", two, labels={"card": "coco-json", "split": "val"})
    assert resolve_label_space(inst).names == ["cow"]
    with pytest.raises(ValueError, match="split 'val' has none"):
        build_card({"card": "coco-json", "split": "val"}, d)


# ------------------------------------------------------------------ CLI
def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="babelseg datasets")
    datasets_cmd.add_arguments(parser)
    return datasets_cmd.run(parser.parse_args(argv))


def test_cli_check_and_list(tmp_path, capsys):
    splits = semantic_fixture(tmp_path / "bad")
    write_rgb(tmp_path / "good" / "img" / "x.png")
    write_grey(tmp_path / "good" / "lab" / "x.png", np.full((H, W), 7))
    datasets = [
        {
            "name": "bad",
            "format": "semantic-png",
            "root": "bad",
            "labels": LABELS,
            "splits": splits,
        },
        {
            "name": "good",
            "format": "semantic-png",
            "root": "good",
            "labels": LABELS,
            "heldout": True,
            "splits": {"val": {"images": "img", "labels": "lab"}},
        },
    ]
    path = tmp_path / "datasets.yaml"
    path.write_text(yaml.safe_dump({"datasets": datasets}))
    assert len(load_declarations(path)) == 2

    assert run_cli(["check", str(path), "--datasets", "good"]) == 0
    out = capsys.readouterr().out
    assert "good: semantic-png" in out and "1/1 datasets ok" in out
    assert "road" in out and "car" in out and "<- none" in out  # car and sky have no pixels

    assert run_cli(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "problems (5)" in out and "unknown values" in out and "1/2 datasets ok" in out

    assert run_cli(["check", str(path), "--split", "val", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and data["skipped"] == ["bad"]
    assert data["datasets"][0]["splits"]["val"]["pixel_counts"] == {"road": 12, "car": 0, "sky": 0}

    with pytest.raises(ValueError, match=r"no dataset \['nope'\]"):
        run_cli(["check", str(path), "--datasets", "nope"])

    assert run_cli(["list", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "name",
        "format",
        "task",
        "annotation",
        "heldout",
        "splits",
        "classes",
    ]
    assert lines[2].split() == ["good", "semantic-png", "semantic", "clean", "yes", "val", "3"]
    assert run_cli([]) == 2


def test_coco_instances_declared_semantic_is_refused_with_the_conversion(tmp_path):
    (tmp_path / "i").mkdir()
    data = {"images": [], "annotations": [], "categories": [{"id": 92, "name": "banner"}]}
    (tmp_path / "stuff.json").write_text(json.dumps(data))
    splits = {"val": {"images": "i", "json": "stuff.json"}}
    d = decl(tmp_path, "coco-instances", splits, labels={"card": "coco-json"})
    d.task = Task.SEMANTIC
    report = check_dataset(d)
    assert not report.ok
    assert "cocoSegmentationToPng" in report.problems[0] and "coco-stuff-171" in report.problems[0]


# ------------------------------------------------------------------ what training trips on
def test_check_decodes_images_so_truncated_ones_are_problems(tmp_path):
    write_rgb(tmp_path / "img" / "a.png", 40, 40)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), np.uint8)).save(
        tmp_path / "img" / "b.png"
    )
    data = (tmp_path / "img" / "b.png").read_bytes()
    (tmp_path / "img" / "b.png").write_bytes(data[: len(data) // 2])  # header intact
    for stem in "ab":
        write_grey(tmp_path / "lab" / f"{stem}.png", np.full((40, 40), 7))
    splits = {"train": {"images": "img", "labels": "lab"}}
    rep = check_dataset(decl(tmp_path, "semantic-png", splits)).splits["train"]
    assert (rep.num_images, rep.num_read) == (2, 1)
    assert any("b.png is damaged or truncated" in p for p in rep.problems), rep.problems


@pytest.mark.parametrize(
    "counts, why",
    [
        ([0, 2, 4, 2, 10], "covering 18 pixels"),
        ("11", "covering 2 pixels"),
        ("\x7f!", "not a list"),
    ],
)
def test_check_validates_rle_runs_as_training_decodes_them(tmp_path, counts, why):
    write_rgb(tmp_path / "images" / "a.png", 6, 8)
    data = {
        "images": [{"id": 1, "file_name": "a.png", "height": 6, "width": 8}],
        "annotations": [
            ann(1, 1, 1, 0, segmentation={"size": [6, 8], "counts": counts}),
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    (tmp_path / "inst.json").write_text(json.dumps(data))
    splits = {"val": {"images": "images", "json": "inst.json"}}
    rep = check_dataset(decl(tmp_path, "coco-instances", splits, labels={"card": "coco-json"}))
    problems = rep.splits["val"].problems
    assert len(problems) == 1 and "annotation 1 of image a.png has RLE counts" in problems[0]
    assert why in problems[0]


def test_check_reports_an_empty_split(tmp_path):
    data = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "person"}]}
    (tmp_path / "images").mkdir()
    (tmp_path / "inst.json").write_text(json.dumps(data))
    splits = {"train": {"images": "images", "json": "inst.json"}}
    rep = check_dataset(decl(tmp_path, "coco-instances", splits, labels={"card": "coco-json"}))
    assert not rep.ok
    assert "Split 'train' of dataset 'ds'" in rep.splits["train"].problems[0]
    assert "has no images" in rep.splits["train"].problems[0]
