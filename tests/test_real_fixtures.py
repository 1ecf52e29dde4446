"""Readers, cards and `datasets check` against samples of the real datasets (read-only).

The samples live outside the project (shared/fixtures); these tests skip when they are absent.
Counts below were measured on those samples and cross-checked between formats (COCO instances
vs panoptic masks, Cityscapes labelIds vs panoptic vs labelTrainIds).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from babelseg.data.check import check_dataset
from babelseg.data.declaration import load_declarations
from babelseg.data.readers import make_reader

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason="shared/fixtures not present")

CS_SPLIT = {"images": "leftImg8bit", "labels": "gtFine", "image_pattern": "{stem}_leftImg8bit.png"}
PALETTE_SPLIT = {"images": "imgs", "labels": "gts", "image_pattern": "{stem}_img.jpg",
                 "label_pattern": "{stem}_gt.png"}  # fmt: skip


def declarations() -> list[dict]:
    f = FIXTURES
    return [
        {"name": "ade", "format": "semantic-png", "root": str(f / "ade20k_sample"),
         "labels": {"card": "ade20k-150"},
         "splits": {"val": {"images": "images", "labels": "annotations"}}},
        {"name": "cs_train", "format": "semantic-png", "root": str(f / "cityscapes_sample"),
         "labels": {"card": "cityscapes", "ids": "train"},
         "splits": {"val": {**CS_SPLIT, "label_pattern": "{stem}_gtFine_labelTrainIds.png"}}},
        {"name": "cs_label", "format": "semantic-png", "root": str(f / "cityscapes_sample"),
         "labels": {"card": "cityscapes", "ids": "label"},
         "splits": {"val": {**CS_SPLIT, "label_pattern": "{stem}_gtFine_labelIds.png"}}},
        {"name": "cs_panoptic", "format": "coco-panoptic", "task": "panoptic",
         "root": str(f / "cityscapes_panoptic_sample"),
         "labels": {"card": "cityscapes", "ids": "label"},
         "options": {"image_pattern": "{image_id}_leftImg8bit.png"},
         "splits": {"val": {"images": str(f / "cityscapes_sample" / "leftImg8bit"),
                            "json": "cityscapes_panoptic_val.json",
                            "panoptic": "cityscapes_panoptic_val"}}},
        {"name": "coco_panoptic", "format": "coco-panoptic", "task": "panoptic",
         "root": str(f / "coco_panoptic_sample"),
         "labels": {"card": "coco-json", "file": "panoptic_coco_categories.json"},
         "splits": {"val": {"images": "input_images", "json": "panoptic_examples.json",
                            "panoptic": "panoptic_examples"}}},
        {"name": "coco_instances", "format": "coco-instances", "task": "instance",
         "root": str(f / "coco_panoptic_sample"), "labels": {"card": "coco-json"},
         "splits": {"val": {"images": "input_images", "json": "instances_from_panoptic.json"}}},
        {"name": "palette", "format": "semantic-png", "root": str(f / "palette_png_sample"),
         "labels": {"classes": ["background", "a", "b", "c"]},
         "splits": {"train": {**PALETTE_SPLIT, "split_file": "splits/train.txt"},
                    "val": {**PALETTE_SPLIT, "split_file": "splits/val.txt"}}},
    ]  # fmt: skip


@pytest.fixture(scope="module")
def decls(tmp_path_factory):
    path = tmp_path_factory.mktemp("real") / "datasets.yaml"
    path.write_text(yaml.safe_dump({"datasets": declarations()}))
    return load_declarations(path)


@pytest.fixture(scope="module")
def reports(decls):
    return {name: check_dataset(d) for name, d in decls.items()}


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


def test_every_fixture_checks_clean(reports):
    for name, report in reports.items():
        assert report.ok, (name, report.to_dict())
        for rep in report.splits.values():
            assert rep.unknown_values == {} and rep.num_read == rep.num_images


def test_ade20k(decls, reports):
    rep = reports["ade"].splits["val"]
    assert rep.num_images == 3 and len(reports["ade"].class_names) == 150
    assert nonzero(rep.pixel_counts) == {
        "wall": 25748, "building": 181641, "sky": 248238, "tree": 31125, "road": 31838,
        "grass": 53099, "sidewalk": 22518, "earth": 341, "plant": 10578, "car": 2330,
        "signboard": 153, "bus": 1681, "streetlight": 202, "escalator": 17664, "van": 1616,
    }  # fmt: skip
    reader = make_reader(decls["ade"], "val")
    assert reader.image_ids() == ["ADE_val_00000001", "ADE_val_00000002", "ADE_val_00000003"]
    s = reader[0]
    assert s.image.shape == (512, 683, 3) and s.semantic.shape == (512, 683)
    assert int((s.semantic == 255).sum()) == 3613  # on-disk 0 (unlabelled)
    assert sorted(np.unique(s.semantic).tolist()) == [0, 1, 2, 4, 6, 9, 17, 255]


def test_cityscapes_train_label_and_panoptic_agree(decls, reports):
    train = reports["cs_train"].splits["val"].pixel_counts
    label = reports["cs_label"].splits["val"].pixel_counts
    pan = reports["cs_panoptic"].splits["val"]
    assert nonzero(label) == {
        "road": 9740, "sidewalk": 2628, "building": 12744, "fence": 44, "pole": 396,
        "traffic sign": 188, "vegetation": 664, "sky": 581, "person": 107, "car": 1802,
    }  # fmt: skip
    assert set(nonzero(train)) == set(nonzero(label))
    # labelIds and labelTrainIds were resized separately: ~77 boundary pixels disagree.
    assert sum(abs(train[k] - label[k]) for k in label) <= 77
    assert all(abs(train[k] - label[k]) <= 10 for k in label)
    # The official panoptic converter works from the same labelIds: same pixels.
    assert pan.pixel_counts == label
    assert nonzero(pan.segment_counts) == {
        "road": 1, "sidewalk": 1, "building": 1, "fence": 1, "pole": 1, "traffic sign": 1,
        "vegetation": 1, "sky": 1, "person": 4, "car": 3,
    }  # fmt: skip
    assert nonzero(pan.crowd_counts) == {}
    a = make_reader(decls["cs_label"], "val")[0]
    b = make_reader(decls["cs_panoptic"], "val")[0]
    t = make_reader(decls["cs_train"], "val")[0]
    np.testing.assert_array_equal(a.semantic, b.semantic)
    assert int((a.semantic != t.semantic).sum()) == 77
    assert a.image_id == "frankfurt_000000_000294" and b.masks.shape == (15, 128, 256)
    assert b.segment_ids.tolist()[-3:] == [26000, 26001, 26002]


def test_coco_panoptic_and_instances(decls, reports):
    pan = reports["coco_panoptic"].splits["val"]
    inst = reports["coco_instances"].splits["val"]
    assert pan.num_images == 2 and inst.num_images == 2
    assert len(reports["coco_panoptic"].class_names) == 133
    assert len(reports["coco_instances"].class_names) == 80
    assert nonzero(pan.segment_counts) == {
        "person": 26, "truck": 2, "horse": 11, "sports ball": 1, "gravel": 1,
        "tree-merged": 2, "sky-other-merged": 2, "grass-merged": 2,
    }  # fmt: skip
    assert nonzero(pan.crowd_counts) == {"person": 2, "horse": 1}
    assert nonzero(inst.segment_counts) == {"person": 26, "truck": 2, "horse": 11, "sports ball": 1}
    assert nonzero(inst.crowd_counts) == {"person": 2, "horse": 1}
    assert sum(pan.segment_counts.values()) + sum(pan.crowd_counts.values()) == 50

    p, i = make_reader(decls["coco_panoptic"], "val"), make_reader(decls["coco_instances"], "val")
    space = p.label_space
    for k, n_segments in enumerate((18, 32)):
        a, b = p[k], i[k]
        assert len(a.classes) == n_segments and a.image_id == b.image_id
        # class values are COCO ids with gaps, e.g. sports ball 37, gravel 125.
        assert space.value_of(space.index("sports ball")) == 37
        things = [j for j, c in enumerate(a.classes) if space.classes[c].is_thing]
        assert len(things) == len(b.classes)
        np.testing.assert_array_equal(a.masks[things], b.masks)  # RLE == panoptic PNG
        np.testing.assert_array_equal(a.iscrowd[things], b.iscrowd)
        np.testing.assert_array_equal(a.boxes[things], b.boxes)
    assert int((p[0].semantic == 255).sum()) == 2712  # VOID pixels


def test_palette_png_reads_indices(decls, reports):
    rep = reports["palette"]
    assert rep.splits["train"].num_images == 4 and rep.splits["val"].num_images == 1
    assert rep.splits["train"].pixel_counts == {
        "background": 103553,
        "a": 11774,
        "b": 6088,
        "c": 9657,
    }
    assert rep.splits["val"].pixel_counts == {"background": 14528, "a": 0, "b": 0, "c": 18240}
    reader = make_reader(decls["palette"], "val")
    assert reader.image_ids() == ["00004"]
    assert np.unique(reader[0].semantic).tolist() == [0, 3]
