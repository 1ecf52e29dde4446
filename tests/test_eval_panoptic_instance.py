"""Eval and predict of the mask-classification recipes: PQ for panoptic datasets, mask AP for
boxes-only data (against its hidden masks), COCO files that `babelseg score` reads."""

import json

import numpy as np
import pytest

from babelseg.cli.main import main
from babelseg.data.declaration import load_declarations
from babelseg.data.sample import Annotation, Sample, Task
from babelseg.engine.config import load_config
from babelseg.engine.trainer import train
from babelseg.evaluation.runner import (
    coco_instance_annotations,
    evaluate_datasets,
    panoptic_ground_truth,
)
from babelseg.inference.predictor import Predictor


def test_panoptic_ground_truth_numbers_segments_and_keeps_crowd_flags():
    masks = np.zeros((2, 3, 4), bool)
    masks[0, 0] = True
    masks[1, 2, 1:3] = True
    sample = Sample(
        image=np.zeros((3, 4, 3), np.uint8),
        dataset="d",
        task=Task.PANOPTIC,
        annotation=Annotation.CLEAN,
        image_id="x",
        masks=masks,
        classes=np.array([4, 1]),
        iscrowd=np.array([False, True]),
    )
    ids, segments = panoptic_ground_truth(sample)
    assert ids.tolist() == [[1, 1, 1, 1], [0, 0, 0, 0], [0, 2, 2, 0]]
    assert segments == [
        {"id": 1, "category_id": 4, "iscrowd": 0},
        {"id": 2, "category_id": 1, "iscrowd": 1},
    ]
    (first, second) = coco_instance_annotations(sample, 7)
    assert first["image_id"] == 7 and first["category_id"] == 5 and second["iscrowd"] == 1
    assert first["segmentation"]["size"] == [3, 4]


@pytest.fixture(scope="module")
def trained(tiny_synthworld, tmp_path_factory):
    """A 2-step dataseg run on vista_roads (panoptic) and open_boxes (boxes only)."""
    import yaml

    tmp = tmp_path_factory.mktemp("mask_eval")
    cfg = {
        "run_dir": str(tmp / "run"),
        "data": {
            "datasets_yaml": str(tiny_synthworld / "datasets.yaml"),
            "train": ["vista_roads", "open_boxes"],
            "batch_size": 2,
            "crop": [32, 32],
            "num_workers": 0,
            "sampling": "per_dataset",
        },
        "labels": {"encoder": "hash", "cache_dir": str(tmp / "cache")},
        "model": {
            "backbone": "tiny",
            "backbone_kwargs": {"widths": [8, 8, 8, 8], "depths": [1, 1, 1, 1], "norm": "gn"},
            "decoder_dim": 16,
            "num_queries": 8,
            "query_layers": 1,
            "query_ffn_dim": 32,
        },
        "recipe": {
            "name": "dataseg",
            "learn_temperature": False,
            "mask": {"num_points": 64, "overlap_threshold": 0.0},
            "dataseg": {"panoptic_threshold": 0.0},
        },
        "train": {"steps": 2, "checkpoint_every": 2, "warmup_steps": 1, "eval_at_end": False},
    }
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    train(load_config(path))
    return tmp, tiny_synthworld


def test_eval_reports_pq_for_panoptic_and_ap_for_boxes(trained):
    tmp, sw = trained
    predictor = Predictor.from_checkpoint(tmp / "run")
    decls = load_declarations(sw / "datasets.yaml")
    metrics = evaluate_datasets(
        predictor,
        decls,
        ["vista_roads", "open_boxes", "metro_drive"],
        max_images=2,
        show_progress=False,
    )
    ds = metrics["datasets"]
    assert ds["vista_roads"]["task"] == "panoptic"
    assert {"PQ", "SQ", "RQ", "PQ_th", "PQ_st", "mIoU"} <= set(ds["vista_roads"])
    assert 0.0 <= ds["vista_roads"]["PQ"] <= 100.0 and ds["vista_roads"]["num_images"] == 2
    assert ds["open_boxes"]["task"] == "instance" and "skipped" not in ds["open_boxes"]
    assert 0.0 <= ds["open_boxes"]["AP"] <= 100.0
    assert ds["metro_drive"]["task"] == "semantic" and "PQ" not in ds["metro_drive"]
    assert metrics["mean_PQ"] == ds["vista_roads"]["PQ"]
    assert metrics["mean_AP"] == ds["open_boxes"]["AP"]


def test_predict_writes_coco_files_that_score_reads(trained, capsys):
    tmp, sw = trained
    images = sorted((sw / "vista_roads" / "images" / "val").iterdir())[:2]
    gt_json = sw / "vista_roads" / "annotations" / "panoptic_val.json"
    out = tmp / "pred"
    code = main(
        [
            "predict",
            "--run",
            str(tmp / "run"),
            "--dataset",
            "vista_roads",
            *map(str, images),
            "--out",
            str(out),
            "--image-ids",
            str(gt_json),
        ]
    )
    assert code == 0
    pan = json.loads((out / "panoptic.json").read_text())
    assert len(pan["annotations"]) == 2 and (out / "panoptic" / f"{images[0].stem}.png").is_file()
    results = json.loads((out / "instances.json").read_text())
    assert results and {"image_id", "category_id", "segmentation", "score"} <= set(results[0])

    # ground truth of the same two images, then `babelseg score` on both files
    gt = json.loads(gt_json.read_text())
    ids = {a["image_id"] for a in pan["annotations"]}
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in ids]
    gt["images"] = [i for i in gt["images"] if i["id"] in ids]
    small = tmp / "gt_small.json"
    small.write_text(json.dumps(gt))
    capsys.readouterr()
    assert (
        main(
            [
                "score",
                "--task",
                "panoptic",
                "--gt-json",
                str(small),
                "--gt-dir",
                str(sw / "vista_roads" / "panoptic" / "val"),
                "--pred-json",
                str(out / "panoptic.json"),
                "--pred-dir",
                str(out / "panoptic"),
                "--out",
                str(tmp / "pq.json"),
            ]
        )
        == 0
    )
    assert "PQ" in capsys.readouterr().out
    assert json.loads((tmp / "pq.json").read_text())["mean_PQ"] is not None

    # instance results against an instances version of the same ground truth (RLE of each
    # panoptic segment): category ids and image ids must line up
    from babelseg.data.readers import make_reader

    decls = load_declarations(sw / "datasets.yaml")
    reader = make_reader(decls["vista_roads"], "val")
    by_stem = {s: i for i, s in enumerate(reader.image_ids())}
    inst = {"images": gt["images"], "categories": gt["categories"], "annotations": []}
    space = reader.label_space
    for im in gt["images"]:
        sample = reader[by_stem[im["file_name"].rsplit(".", 1)[0]]]
        for a in coco_instance_annotations(sample, im["id"]):
            a["category_id"] = space.value_of(a["category_id"] - 1)
            inst["annotations"].append(a)
    inst_path = tmp / "inst_gt.json"
    inst_path.write_text(json.dumps(inst))
    assert (
        main(
            [
                "score",
                "--task",
                "instance",
                "--gt-json",
                str(inst_path),
                "--pred-json",
                str(out / "instances.json"),
            ]
        )
        == 0
    )
    assert "mask AP" in capsys.readouterr().out
