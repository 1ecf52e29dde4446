"""`babelseg score --task panoptic|instance` on tiny files written here (known answers)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from babelseg.cli.main import main
from babelseg.evaluation.coco_io import PanopticWriter, write_results_json
from babelseg.evaluation.instance import masks_to_coco_results

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
COCO = FIXTURES / "coco_panoptic_sample"
CATS = [{"id": 1, "name": "car", "isthing": 1}, {"id": 10, "name": "sky", "isthing": 0}]


def panoptic_files(tmp_path: Path) -> list[str]:
    gt = PanopticWriter(json_path=tmp_path / "gt.json", png_dir=tmp_path / "gt", categories=CATS)
    gt.add(image_id=1, ids=np.array([[4, 4, 0], [2, 2, 2]]),
           segments=[{"id": 4, "category_id": 10}, {"id": 2, "category_id": 1}])  # fmt: skip
    gt.write()
    pred = PanopticWriter(json_path=tmp_path / "p.json", png_dir=tmp_path / "p")
    # sky: 3 px = 2 sky + 1 VOID -> IoU 1 (TP); car: 2 of 3 px -> IoU 2/3 (TP).
    pred.add(image_id=1, ids=np.array([[7, 7, 7], [9, 9, 0]]),
             segments=[{"id": 7, "category_id": 10}, {"id": 9, "category_id": 1}])  # fmt: skip
    pred.write()
    return ["score", "--task", "panoptic", "--gt-json", str(tmp_path / "gt.json"),
            "--gt-dir", str(tmp_path / "gt"), "--pred-json", str(tmp_path / "p.json"),
            "--pred-dir", str(tmp_path / "p")]  # fmt: skip


def test_score_panoptic_prints_and_writes(tmp_path, capsys):
    out = tmp_path / "metrics.json"
    assert main([*panoptic_files(tmp_path), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Things" in text and "Stuff" in text and "83.3" in text  # (100 + 66.7) / 2
    entry = json.loads(out.read_text())["datasets"]["gt"]
    assert entry["task"] == "panoptic"
    assert entry["PQ"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert entry["PQ_th"] == pytest.approx(100 * 2 / 3) and entry["PQ_st"] == pytest.approx(100)
    assert entry["RQ"] == pytest.approx(100.0)
    assert entry["per_class"] == {"car": pytest.approx(200 / 3), "sky": pytest.approx(100.0)}


def test_score_panoptic_errors_name_files(tmp_path, capsys):
    args = panoptic_files(tmp_path)
    (tmp_path / "p" / "1.png").unlink()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "1.png" in err and "image_id 1" in err
    (tmp_path / "p.json").write_text(json.dumps({"annotations": []}))
    assert main(args) == 2
    assert "no prediction" in capsys.readouterr().err
    assert main(["score", "--task", "panoptic", "--gt-json", str(tmp_path / "gt.json")]) == 2
    assert "--pred-json" in capsys.readouterr().err


def test_score_instance(tmp_path, capsys):
    masks = np.zeros((2, 8, 8), dtype=bool)
    masks[0, :4, :4] = True
    masks[1, 5:, 5:] = True
    gt_res = masks_to_coco_results(masks=masks, classes=np.array([0, 0]), scores=np.ones(2),
                                   image_id=5, category_ids=[1])  # fmt: skip
    gt = {
        "images": [{"id": 5, "height": 8, "width": 8}],
        "categories": [{"id": 1, "name": "car"}],
        "annotations": [
            {
                "id": 0,
                "image_id": 5,
                "category_id": 1,
                "iscrowd": 0,
                "segmentation": r["segmentation"],
            }
            for r in gt_res
        ],  # fmt: skip
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    # One exact detection: precision 1 up to recall 1/2, i.e. on 51 of the 101 recall points.
    write_results_json(tmp_path / "res.json", gt_res[:1])
    out = tmp_path / "m.json"
    argv = ["score", "--task", "instance", "--gt-json", str(tmp_path / "gt.json"),
            "--pred-json", str(tmp_path / "res.json"), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "AP=50.5" in capsys.readouterr().out
    entry = json.loads(out.read_text())["datasets"]["gt"]
    assert entry["task"] == "instance" and entry["AP"] == pytest.approx(100 * 51 / 101)
    assert entry["per_class"]["car"] == pytest.approx(100 * 51 / 101)
    write_results_json(tmp_path / "res.json", [{**gt_res[0], "image_id": 6}])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "res.json" in err and "[6]" in err


@pytest.mark.skipif(not COCO.is_dir(), reason="shared/fixtures not present")
def test_score_coco_sample_against_itself(tmp_path, capsys):
    gt = json.loads((COCO / "panoptic_examples.json").read_text())
    argv = ["score", "--task", "panoptic", "--gt-json", str(COCO / "panoptic_examples.json"),
            "--gt-dir", str(COCO / "panoptic_examples"),
            "--pred-json", str(COCO / "panoptic_examples.json"),
            "--pred-dir", str(COCO / "panoptic_examples"),
            "--out", str(tmp_path / "m.json")]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["mean_PQ"] == pytest.approx(100.0)
    assert len(report["datasets"]["panoptic_examples"]["per_class"]) == len(gt["categories"])
    assert "All       | 100.0  100.0  100.0     8" in capsys.readouterr().out
