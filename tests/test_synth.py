"""SynthWorld: world validation, format writers on hand-sized inputs, and a tiny generated world
read back through the real readers (determinism, relations, held-out names)."""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from pycocotools import mask as mask_utils

from babelseg.cli import synth_cmd
from babelseg.data.declaration import load_declarations
from babelseg.data.readers import make_reader
from babelseg.data.synth import generate, load_world, parse_world, relations, render_sample
from babelseg.data.synth.annotate import Annotation, Segment, _crowds, add_noise, add_void_border
from babelseg.data.synth.textures import TEXTURES
from babelseg.data.synth.views import CrowdSpec, NoiseSpec
from babelseg.data.synth.world_yaml import DEFAULT_WORLD_PATH
from babelseg.data.synth.writers import (
    instance_annotations,
    panoptic_segments,
    save_semantic_png,
)
from babelseg.labels.space import IGNORE_INDEX

SCALE = "tiny"


@pytest.fixture(scope="module")
def world():
    return load_world()


@pytest.fixture(scope="module")
def raw_world() -> dict:
    return yaml.safe_load(DEFAULT_WORLD_PATH.read_text())


@pytest.fixture(scope="module")
def generated(tmp_path_factory, world):
    out = tmp_path_factory.mktemp("sw") / "a"
    summary = generate(out, world=world, seed=3, scale=SCALE, workers=1, progress=False)
    return out, summary


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------------------- the default world
def test_default_world_shape(world):
    assert len(world.classes) >= 24
    train = [v for v in world.datasets if not v.heldout]
    held = [v for v in world.datasets if v.heldout]
    assert len(train) >= 4 and len(held) >= 2
    assert {v.format for v in train} == {"semantic-png", "coco-panoptic", "coco-instances"}
    assert any(v.annotation == "boxes" for v in train)
    assert any(v.annotation == "noisy" for v in train)
    encodings = [v.encoding for v in train if v.format == "semantic-png"]
    assert any(e["png_mode"] == "P" for e in encodings)
    assert any(e["reduce_zero_label"] for e in encodings)


def test_every_world_class_is_learnable(world):
    """Each world class has its own label (alone) in some training dataset."""
    alone = {
        lab.world_classes[0]
        for v in world.datasets
        if not v.heldout
        for lab in v.labels
        if len(lab.world_classes) == 1
    }
    assert set(world.class_names) <= alone


def test_taxonomies_disagree(world):
    metro, vista = world.dataset("metro_drive"), world.dataset("vista_roads")
    road = {lab.name: lab.world_classes for lab in metro.labels}["road"]
    assert road == ("road", "lane marking", "crosswalk")  # coarse vs fine
    assert {"road", "lane marking", "crosswalk"} <= set(vista.label_names)
    assert "pedestrian" in vista.label_names and "person" in metro.label_names  # synonyms
    assert "truck" in world.dataset("home_scenes").ignored_classes  # unlabelled
    pascal = world.dataset("pascal_objects")
    assert pascal.label_names[0] == "background"
    assert "sky" in pascal.labels[0].world_classes


def test_heldout_names_unseen_in_training(world):
    trained = {n for v in world.datasets if not v.heldout for n in v.label_names}
    novel = {n for v in world.datasets if v.heldout for n in v.novel_labels}
    assert {"automobile", "couch", "roadway"} <= novel
    assert not novel & trained


def test_resolved_world_round_trips(world):
    again = parse_world(world.to_dict(), source="resolved")
    assert again.to_dict() == world.to_dict()
    assert [v.label_names for v in again.datasets] == [v.label_names for v in world.datasets]


# ---------------------------------------------------------------------------- world validation
def _mutate_texture(d):
    d["classes"][0]["texture"]["family"] = "strips"


def _mutate_taxonomy_key(d):
    d["datasets"][0]["taxonomy"]["raod"] = "road"


def _mutate_description(d):
    del d["datasets"][0]["descriptions"]["vegetation"]


def _mutate_novel(d):
    d["datasets"][0]["taxonomy"]["car"] = "automobile"


def _mutate_class_key(d):
    d["classes"][2]["colour"] = d["classes"][2].pop("color")


def _mutate_host(d):
    d["classes"][11]["hosts"] = ["car"]


def _mutate_bool_key(d):
    d["classes"][11][True] = d["classes"][11].pop("hosts")


def _mutate_scale(d):
    del d["datasets"][1]["splits"]["tiny"]


def _mutate_boxes(d):
    d["datasets"][0]["annotation"] = "boxes"


def _mutate_instances_stuff(d):
    d["datasets"][4]["taxonomy"]["sky"] = "sky"


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            _mutate_texture,
            r"classes\[0\]\(sky\)\.texture\.family: 'strips'.*did you mean 'stripes'",
        ),
        (_mutate_taxonomy_key, r"datasets\[0\]\(metro_drive\)\.taxonomy\.raod: not a world class"),
        (
            _mutate_description,
            r"datasets\[0\]\(metro_drive\)\.descriptions: "
            r"label 'vegetation' covers \['grass', 'tree'\]",
        ),
        (
            _mutate_novel,
            r"datasets\[5\]\(night_drive\)\.novel_labels: 'automobile' is declared novel",
        ),
        (
            _mutate_class_key,
            r"classes\[2\]\(wall\)\.colour: unknown key \(did you mean 'color'\?\)",
        ),
        (_mutate_host, r"classes\[11\]\(lane marking\)\.hosts: host 'car' must be a band class"),
        (_mutate_bool_key, r"classes\[11\]\(lane marking\)\.True: YAML reads an unquoted on/off"),
        (_mutate_scale, r"datasets\[1\]\(vista_roads\)\.splits\.tiny: missing required key"),
        (
            _mutate_boxes,
            r"datasets\[0\]\(metro_drive\)\.annotation: "
            r"boxes-only annotation needs format coco-instances",
        ),
        (
            _mutate_instances_stuff,
            r"datasets\[4\]\(open_boxes\)\.taxonomy: "
            r"coco-instances labels things only; labels \['sky'\]",
        ),
    ],
)
def test_world_errors_name_file_and_key(raw_world, mutate, expected):
    data = copy.deepcopy(raw_world)
    mutate(data)
    with pytest.raises(ValueError, match=r"^my_world\.yaml: " + expected):
        parse_world(data, source="my_world.yaml")


def test_load_world_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="World file not found"):
        load_world(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("classes: [unclosed\n")
    with pytest.raises(ValueError, match="bad.yaml is not valid YAML"):
        load_world(bad)


# ---------------------------------------------------------------------------- hand-sized pieces
def test_textures_known_values():
    rng = np.random.default_rng(0)
    grid = TEXTURES["grid"](20, 20, 2.0, 0.0, rng)
    assert set(np.unique(grid)) == {-1.0, 1.0}
    grad = TEXTURES["gradient"](5, 3, 1.0, 0.0, rng)
    np.testing.assert_allclose(grad[:, 0], [-1.0, -0.5, 0.0, 0.5, 1.0])
    stripes = TEXTURES["stripes"](4, 8, 1.0, 0.0, rng)  # 1 cycle per height: period 4 px in x
    assert np.allclose(stripes, stripes[:1]) and np.allclose(stripes[:, :4], stripes[:, 4:])
    across = TEXTURES["stripes"](8, 4, 2.0, 90.0, rng)  # rotated: varies along y, period 4 px
    assert np.allclose(across, across[:, :1], atol=1e-5)
    assert np.allclose(across[:4], across[4:], atol=1e-5)


def _view(world, name):
    return world.dataset(name)


def test_semantic_png_encodings(tmp_path, world):
    sem = np.array([[0, 1], [IGNORE_INDEX, 2]], np.uint8)
    home = _view(world, "home_scenes")  # reduce_zero_label: value k stored as k + 1, 0 unlabelled
    save_semantic_png(tmp_path / "a.png", sem, home)
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "a.png")), [[1, 2], [0, 3]])
    pascal = _view(world, "pascal_objects")  # palette PNG: the indices are the values
    save_semantic_png(tmp_path / "b.png", sem, pascal)
    im = Image.open(tmp_path / "b.png")
    assert im.mode == "P"
    np.testing.assert_array_equal(np.array(im), [[0, 1], [255, 2]])
    night = _view(world, "night_drive")  # 16-bit with explicit values, 0 unlabelled
    save_semantic_png(tmp_path / "c.png", sem, night)
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "c.png")), [[7, 8], [0, 11]])


def _two_segments() -> Annotation:
    seg = np.zeros((4, 5), np.int32)
    seg[:, :] = 1
    seg[1:3, 1:3] = 2
    seg[3, 4] = 0
    return Annotation(seg, [Segment(1, 2, False), Segment(2, 0, True, iscrowd=True)])


def test_panoptic_ids_and_segments(world):
    vista = _view(world, "vista_roads")  # label 0 = road (stuff, id 92), label 2 ... thing ids
    ann = _two_segments()
    ann.segments[0].label = vista.label_names.index("road")
    ann.segments[1].label = vista.label_names.index("car")
    rgb, infos = panoptic_segments(ann, vista)
    rgb = rgb.astype(np.int64)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    road_id = vista.labels[ann.segments[0].label].value
    car_id = vista.labels[ann.segments[1].label].value
    assert road_id == 92 and car_id in range(1, 92)
    assert ids[0, 0] == road_id * 1000 + 1 and ids[1, 1] == car_id * 1000 + 2 and ids[3, 4] == 0
    assert infos[0] == {
        "id": 92001,
        "category_id": 92,
        "area": 15,
        "bbox": [0, 0, 5, 4],
        "iscrowd": 0,
    }
    assert infos[1]["area"] == 4 and infos[1]["bbox"] == [1, 1, 2, 2] and infos[1]["iscrowd"] == 1


def test_instance_rle_round_trip(world):
    boxes = _view(world, "open_boxes")
    ann = _two_segments()
    ann.segments[0] = Segment(1, 0, True)
    entries = instance_annotations(ann, boxes, with_masks=True)
    assert [e["bbox"] for e in entries] == [[0, 0, 5, 4], [1, 1, 2, 2]]
    assert [e["area"] for e in entries] == [15, 4] and [e["iscrowd"] for e in entries] == [0, 1]
    rle = dict(entries[1]["segmentation"], counts=entries[1]["segmentation"]["counts"].encode())
    np.testing.assert_array_equal(mask_utils.decode(rle), ann.seg_map == 2)
    assert "segmentation" not in instance_annotations(ann, boxes, with_masks=False)[0]


def test_void_border_outside_things():
    seg = np.ones((6, 6), np.int32)
    seg[2:4, 2:4] = 2
    ann = add_void_border(Annotation(seg, [Segment(1, 0, False), Segment(2, 1, True)]), 1)
    sem = ann.semantic()
    assert (sem == IGNORE_INDEX).sum() == 12  # the 4x4 ring around the 2x2 thing
    assert (sem == 1).sum() == 4 and (sem == 0).sum() == 20


def test_crowd_groups_merge():
    members = [Segment(i, 3, True) for i in (1, 2, 3)]
    pair = [Segment(i, 4, True) for i in (4, 5)]
    merged = _crowds(
        {(1, 3): members, (2, 4): pair},
        CrowdSpec(prob=1.0, min_members=3),
        np.random.default_rng(0),
    )
    assert members[0].iscrowd and set(merged) == {2, 3} and merged[2] is members[0]
    assert not pair[0].iscrowd


def test_noise_swaps_labels_within_kind(world):
    view = _view(world, "home_scenes")
    seg = np.ones((8, 8), np.int32)
    seg[2:6, 2:6] = 2
    chair = view.label_names.index("chair")
    wall = view.label_names.index("wall")
    ann = Annotation(seg, [Segment(1, wall, False), Segment(2, chair, True)])
    spec = NoiseSpec(tolerance=0.0, jitter=0.0, morph_prob=0.0, swap_prob=1.0)
    noisy = add_noise(ann, spec, view, np.random.default_rng(0))
    np.testing.assert_array_equal(noisy.seg_map, seg)  # exact polygons, no morphology
    new_stuff, new_thing = (s.label for s in noisy.segments)
    assert new_stuff != wall and not view.labels[new_stuff].is_thing
    assert new_thing != chair and view.labels[new_thing].is_thing
    assert ann.segments[1].label == chair  # the clean annotation is left alone


# ---------------------------------------------------------------------------- a generated world
def test_generation_is_deterministic(tmp_path, generated, world):
    out, _ = generated
    again = tmp_path / "b"
    generate(again, world=world, seed=3, scale=SCALE, workers=2, progress=False)
    first = _hashes(out)
    assert len(first) > 60
    assert _hashes(again) == first  # same seed, parallel workers: same bytes
    other = tmp_path / "c"
    generate(other, world=world, seed=4, scale=SCALE, workers=1, progress=False)
    changed = {k for k, v in _hashes(other).items() if first.get(k) != v}
    assert any(k.endswith(".png") and "/labels/" in k for k in changed)


def test_outputs_declare_and_read_back(generated, world):
    out, summary = generated
    decls = load_declarations(out / "datasets.yaml")
    assert list(decls) == [v.name for v in world.datasets]
    assert decls["home_scenes"].options == {"reduce_zero_label": True}
    assert decls["metro_drive"].augmentation["crop"] == [128, 128]
    assert set(decls["night_drive"].splits) == {"val"} and decls["night_drive"].heldout
    for name, decl in decls.items():
        view = world.dataset(name)
        for split, n in summary.images[name].items():
            reader = make_reader(decl, split, with_hidden_masks=True)
            assert len(reader) == n == view.splits[SCALE][split]
            for i in range(n):
                sample, truth = (
                    reader[i],
                    render_sample(world, view, split=split, index=i, seed=3, scale=SCALE),
                )
                assert sample.image.shape == truth.image.shape
                if view.image_format == "png":
                    np.testing.assert_array_equal(sample.image, truth.image)
                if view.format != "coco-instances":
                    np.testing.assert_array_equal(sample.semantic, truth.annotation.semantic())
                things = [s for s in truth.annotation.segments if s.is_thing]
                if view.format == "coco-panoptic":
                    assert len(sample.masks) == len(truth.annotation.segments)
                    assert int(sample.iscrowd.sum()) == sum(
                        s.iscrowd for s in truth.annotation.segments
                    )
                if view.format == "coco-instances":
                    assert len(sample.boxes) == len(things)
                    if split == "train":
                        assert sample.masks is None
                    else:
                        want = np.stack([truth.annotation.seg_map == s.id for s in things])
                        np.testing.assert_array_equal(sample.masks, want)


def test_relations_agree_with_pixels(generated, world):
    out, _ = generated
    rel = json.loads((out / "relations.json").read_text())
    assert rel == json.loads(json.dumps(relations(world)))
    assert rel["world_classes"] == world.class_names
    for view in world.datasets:
        covers = rel["datasets"][view.name]["labels"]
        assert list(covers) == view.label_names
        ignored = set(rel["datasets"][view.name]["ignored"])
        for split, n in view.splits[SCALE].items():
            for i in range(n):
                truth = render_sample(world, view, split=split, index=i, seed=3, scale=SCALE)
                sem = truth.clean.semantic()
                names = np.array(world.class_names)[truth.world_map]
                for k, label in enumerate(view.label_names):
                    assert set(names[sem == k]) <= set(covers[label]), (view.name, label)
                assert set(names[sem == IGNORE_INDEX]) <= ignored


def test_generated_files(generated, world):
    out, summary = generated
    for name in ("datasets.yaml", "relations.json", "world.yaml", "README.md"):
        assert (out / name).is_file()
    assert load_world(out / "world.yaml").to_dict() == world.to_dict()
    boxes = json.loads((out / "open_boxes/annotations/instances_train.json").read_text())
    assert boxes["annotations"] and all("segmentation" not in a for a in boxes["annotations"])
    assert [a["id"] for a in boxes["annotations"]] == list(range(1, len(boxes["annotations"]) + 1))
    val = json.loads((out / "open_boxes/annotations/instances_val.json").read_text())
    assert all(isinstance(a["segmentation"]["counts"], str) for a in val["annotations"])
    pan = json.loads((out / "vista_roads/annotations/panoptic_train.json").read_text())
    assert {c["isthing"] for c in pan["categories"]} == {0, 1}
    assert sum(summary.images["metro_drive"].values()) == 6


def test_cli_refuses_foreign_folder(tmp_path):
    parser = argparse.ArgumentParser()
    synth_cmd.add_arguments(parser)
    (tmp_path / "notes.txt").write_text("mine")
    args = parser.parse_args(["--out", str(tmp_path), "--scale", SCALE, "--workers", "1"])
    with pytest.raises(ValueError, match="not empty and holds no SynthWorld output"):
        synth_cmd.run(args)
    args = parser.parse_args(["--out", str(tmp_path), "--scale", "huge", "--workers", "1"])
    with pytest.raises(ValueError, match="Unknown scale 'huge'"):
        synth_cmd.run(args)


def test_missed_object_part_takes_the_label_around_it():
    import numpy as np

    from babelseg.data.synth.annotate import _miss_part

    seg = np.ones((20, 20), np.int32)  # segment 1 all around
    seg[5:15, 5:15] = 2  # the object
    _miss_part(seg, 2, (0.5, 0.5), np.random.default_rng(0))
    assert (seg == 2).sum() == 50  # half the 10x10 box, cut from one side
    assert (seg == 1).sum() == 400 - 50
    rows, cols = np.nonzero(seg == 2)
    assert (np.ptp(rows) + 1) * (np.ptp(cols) + 1) == 50  # still one rectangle


def test_evidence_world_noisy_dataset_misses_parts_and_swaps_classes():
    import numpy as np

    world = load_world("evidence")
    view = next(v for v in world.datasets if v.annotation == "noisy")
    assert view.noise.missing_prob > 0 and view.noise.swap_prob >= 0.1
    wrong = labelled = 0
    for i in range(6):
        s = render_sample(world, view, split="train", index=i, seed=0, scale="default")
        clean, noisy = s.clean.semantic(), s.annotation.semantic()
        mask = clean != 255
        labelled += mask.sum()
        wrong += (mask & (noisy != clean) & (noisy != 255)).sum()
    assert wrong / labelled > 0.1  # far noisier than the default world's ~8 %
    val = render_sample(world, view, split="val", index=0, seed=0, scale="default")
    assert np.array_equal(val.clean.semantic(), val.annotation.semantic())
