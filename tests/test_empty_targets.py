"""Images with no kept target (a COCO image without annotations, or whose category ids are all
unknown; common in real COCO) are valid training samples."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from babelseg.data.augment import build_augmentation
from babelseg.data.collate import collate_samples
from babelseg.data.declaration import load_declarations
from babelseg.data.label_source import resolve_label_space
from babelseg.data.readers import make_reader
from babelseg.data.sample import Annotation, Sample, Task
from babelseg.engine.config import load_config
from babelseg.engine.trainer import train


@pytest.fixture
def empty_coco(tiny_synthworld, tmp_path):
    """``datasets.yaml`` with metro_drive and ``empty_masks``: open_boxes' val images (which have
    masks) as a clean instance train split, image 1 without annotations, image 2 with unknown
    category ids only."""
    root = tmp_path / "empty_masks"
    shutil.copytree(tiny_synthworld / "open_boxes", root)
    json_path = root / "annotations" / "instances_val.json"
    data = json.loads(json_path.read_text())
    first, second = data["images"][0]["id"], data["images"][1]["id"]
    kept = []
    for ann in data["annotations"]:
        if ann["image_id"] == first:
            continue
        if ann["image_id"] == second:
            ann["category_id"] = 9999
        kept.append(ann)
    data["annotations"] = kept
    json_path.write_text(json.dumps(data))
    decls = yaml.safe_load((tiny_synthworld / "datasets.yaml").read_text())["datasets"]
    metro = next(d for d in decls if d["name"] == "metro_drive")
    metro["root"] = str(tiny_synthworld / "metro_drive")
    metro["labels"] = str(tiny_synthworld / "metro_drive" / "labels.yaml")
    empty = {
        "name": "empty_masks",
        "format": "coco-instances",
        "root": str(root),
        "task": "instance",
        "annotation": "clean",
        "labels": str(root / "labels.yaml"),
        "splits": {"train": {"images": "images/val", "json": "annotations/instances_val.json"}},
    }
    path = tmp_path / "datasets.yaml"
    path.write_text(yaml.safe_dump({"datasets": [metro, empty]}))
    return path


def test_an_image_without_targets_reads_augments_and_collates(empty_coco):
    decl = load_declarations(empty_coco)["empty_masks"]
    reader = make_reader(decl, "train", resolve_label_space(decl))
    aug = build_augmentation({"crop": [32, 32], "scale": [0.5, 2.0], "flip": True}, train=True)
    samples = []
    for index in (0, 1):
        sample = reader[index]
        assert sample.masks.shape[0] == 0 and sample.classes.shape == (0,)
        samples.append(aug(sample, index))
        assert samples[-1].masks.shape == (0, 32, 32) and samples[-1].boxes.shape == (0, 4)
    batch = collate_samples(samples)
    assert batch.images.shape[0] == 2


def test_masks_that_the_crop_removes_leave_an_empty_sample():
    masks = np.zeros((2, 40, 40), dtype=bool)
    masks[:, :3, :3] = True  # in a corner the crop below can miss
    sample = Sample(
        image=np.zeros((40, 40, 3), dtype=np.uint8),
        dataset="d",
        task=Task.INSTANCE,
        annotation=Annotation.CLEAN,
        image_id="i",
        masks=masks,
        classes=np.array([0, 1]),
        iscrowd=np.zeros(2, dtype=bool),
    )
    aug = build_augmentation({"crop": [8, 8]}, train=True)
    outs = [aug(sample, seed) for seed in range(20)]
    assert any(len(o.classes) == 0 for o in outs)  # some crops keep nothing, none fail
    assert all(o.masks.shape[0] == len(o.classes) for o in outs)


def test_training_on_images_without_targets_runs(empty_coco, tiny_run_config):
    cfg = load_config(
        tiny_run_config("empty", data={"datasets_yaml": str(empty_coco)}),
        [
            "data.train=[metro_drive, empty_masks]",
            "train.steps=3",
            "train.eval_at_end=false",
            "recipe.name=dataseg",  # trains on instance masks
            "model.num_queries=4",
            "model.query_layers=1",
            "model.query_ffn_dim=32",
            "recipe.mask.num_points=64",
        ],
    )
    result = train(cfg)
    assert result.steps == 3 and np.isfinite(result.final_loss)
