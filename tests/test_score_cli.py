"""``babelseg score``: prediction PNG folders scored against ground-truth PNG folders."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from babelseg.cli.main import main

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"

# On-disk values: road 1, car 2, sky 3, 0 = unlabelled.
GT = {
    "a": np.array([[1, 1, 2], [2, 0, 3]]),
    "b": np.array([[3, 3], [1, 0]]),
}
PRED = {
    "a": np.array([[1, 2, 2], [0, 1, 3]]),  # one pixel predicted as "unlabelled"
    "b": np.array([[3, 1], [1, 1]]),
}
# Class indices: a = gt [[0,0,1],[1,I,2]] vs pred [[0,1,1],[I,0,2]]; b = [[2,2],[0,I]] vs
# [[2,0],[0,0]].  road: TP 2, FP 1, FN 1 -> 50.  car: TP 1, FP 1, FN 1 (predicted unlabelled)
# -> 33.33.  sky: TP 2, FN 1 -> 66.67.  mIoU 50.
EXPECTED = {"road": 50.0, "car": 100.0 / 3, "sky": 200.0 / 3}


def _png(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = np.uint8 if values.max() < 256 else np.uint16
    Image.fromarray(values.astype(dtype)).save(path)


def _labels(tmp_path: Path, classes: list, ignore: list[int]) -> Path:
    path = tmp_path / "street.yaml"
    path.write_text(yaml.safe_dump({"classes": classes, "ignore_values": ignore}))
    return path


def _setup(
    tmp_path: Path, *, pred_suffix: str = "", gt_suffix: str = "", skip: tuple[str, ...] = ()
) -> list[str]:
    classes = [{"name": n, "value": v} for n, v in (("road", 1), ("car", 2), ("sky", 3))]
    labels = _labels(tmp_path, classes, [0])
    for stem, values in GT.items():
        _png(tmp_path / "gt" / f"{stem}{gt_suffix}.png", values)
    for stem, values in PRED.items():
        if stem not in skip:
            _png(tmp_path / "pred" / f"{stem}{pred_suffix}.png", values)
    return [
        "score",
        "--gt-dir",
        str(tmp_path / "gt"),
        "--pred-dir",
        str(tmp_path / "pred"),
        "--labels",
        str(labels),
    ]


def test_known_miou_with_pred_suffix_and_json_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _setup(tmp_path, pred_suffix="_pred", gt_suffix="_gtFine")
    out = tmp_path / "res" / "metrics.json"
    argv += ["--pred-suffix", "_pred", "--gt-suffix", "_gtFine", "--out", str(out)]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    entry = report["datasets"]["street"]
    assert entry["task"] == "semantic" and entry["num_images"] == 2
    assert entry["mIoU"] == pytest.approx(50.0)
    assert entry["per_class"] == pytest.approx(EXPECTED)
    assert entry["aAcc"] == pytest.approx(100.0 * 5 / 8)  # 5 of 8 labelled pixels right
    assert report["mean_mIoU"] == pytest.approx(50.0)
    printed = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["street", "semantic", "mIoU", "50.00", "2", "no"] in printed
    assert ["car", "33.33"] in printed


def test_missing_prediction_is_an_error_naming_the_stem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _setup(tmp_path, pred_suffix="_pred")
    assert main(argv) == 2  # without --pred-suffix no stem matches
    err = capsys.readouterr().err
    assert "2 ground-truth files" in err and "a, b" in err and "--pred-suffix" in err


def test_allow_missing_counts_the_image_as_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _setup(tmp_path, skip=("b",))
    assert main(argv) == 2
    assert "e.g. b" in capsys.readouterr().err
    out = tmp_path / "m.json"
    assert main([*argv, "--allow-missing", "--out", str(out)]) == 0
    entry = json.loads(out.read_text())["datasets"]["street"]
    # b's 3 labelled pixels become false negatives: road 1/3, car 1/3, sky 1/3.
    assert entry["per_class"] == pytest.approx({"road": 100 / 3, "car": 100 / 3, "sky": 100 / 3})
    assert entry["mIoU"] == pytest.approx(100.0 / 3)
    assert entry["num_images"] == 2


def test_size_mismatch_names_both_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = _setup(tmp_path)
    _png(tmp_path / "pred" / "a.png", np.ones((3, 3), dtype=np.uint8))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "pred" / "a.png") in err and str(tmp_path / "gt" / "a.png") in err
    assert "(3, 3)" in err and "(3, 2)" in err


def test_missing_folders_and_empty_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _setup(tmp_path)
    assert main([*argv[:-4], "--pred-dir", str(tmp_path / "nowhere"), *argv[-2:]]) == 2
    assert "nowhere" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([*argv[:-4], "--pred-dir", str(tmp_path / "empty"), *argv[-2:]]) == 2
    assert "No PNG files" in capsys.readouterr().err


def test_reduce_zero_label(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Values 0..2 = road, car, sky; the ground truth stores value + 1 with 0 = unlabelled.
    labels = _labels(tmp_path, ["road", "car", "sky"], [255])
    _png(tmp_path / "gt" / "a.png", np.array([[1, 1, 2], [2, 0, 3]]))
    _png(tmp_path / "pred" / "a.png", np.array([[0, 1, 1], [255, 0, 2]]))
    argv = ["score", "--gt-dir", str(tmp_path / "gt"), "--pred-dir", str(tmp_path / "pred")]
    argv += ["--labels", str(labels), "--out", str(tmp_path / "m.json"), "--reduce-zero-label"]
    assert main(argv) == 0
    entry = json.loads((tmp_path / "m.json").read_text())["datasets"]["street"]
    assert entry["per_class"] == pytest.approx({"road": 50.0, "car": 100 / 3, "sky": 100.0})
    assert entry["mIoU"] == pytest.approx((50.0 + 100 / 3 + 100.0) / 3)


def test_reduce_zero_label_unlabelled_is_never_a_class(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A 16-bit space of 300 classes: on-disk 0 must stay unlabelled, not become class 256.
    labels = _labels(tmp_path, [f"c{i}" for i in range(300)], [65535])
    _png(tmp_path / "gt" / "a.png", np.array([[0, 1, 257, 300]]))  # ignore, c0, c256, c299
    _png(tmp_path / "pred" / "a.png", np.array([[5, 0, 256, 299]]))
    argv = ["score", "--gt-dir", str(tmp_path / "gt"), "--pred-dir", str(tmp_path / "pred")]
    argv += ["--labels", str(labels), "--out", str(tmp_path / "m.json"), "--reduce-zero-label"]
    assert main(argv) == 0
    entry = json.loads((tmp_path / "m.json").read_text())["datasets"]["street"]
    assert entry["mIoU"] == pytest.approx(100.0)
    assert entry["aAcc"] == pytest.approx(100.0)
    assert entry["per_class"]["c5"] is None  # the prediction on the unlabelled pixel is not scored


# ---------------------------------------------------------------------- real ADE20K sample
def _ade_classes(ade: Path) -> list[str]:
    with (ade / "objectInfo150.csv").open(newline="") as f:
        return [row["Name"] for row in csv.DictReader(f)]


def test_ade20k_annotations_scored_against_themselves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ade = FIXTURES / "ade20k_sample"
    if not (ade / "annotations").is_dir():
        pytest.skip("shared ADE20K fixture not available")
    names = _ade_classes(ade)
    assert len(names) == 150
    annotations = str(ade / "annotations")

    # On-disk values 1..150, 0 = unlabelled, read as they are.
    raw_labels = tmp_path / "ade_raw.yaml"
    classes = [{"name": n, "value": i + 1} for i, n in enumerate(names)]
    raw_labels.write_text(yaml.safe_dump({"classes": classes, "ignore_values": [0]}))
    out = tmp_path / "raw.json"
    argv = ["score", "--gt-dir", annotations, "--pred-dir", annotations]
    assert main([*argv, "--labels", str(raw_labels), "--out", str(out)]) == 0
    entry = json.loads(out.read_text())["datasets"]["ade_raw"]
    assert entry["mIoU"] == pytest.approx(100.0) and entry["num_images"] == 3
    present = [n for n, v in entry["per_class"].items() if v is not None]
    assert "wall" in present and 5 < len(present) < 150

    # The mmseg convention: values 0..149 with --reduce-zero-label; predictions as a model
    # would write them (index k, 255 for unlabelled).
    reduced_labels = tmp_path / "ade150.yaml"
    reduced_labels.write_text(yaml.safe_dump({"classes": names}))
    for png in sorted((ade / "annotations").glob("*.png")):
        raw = np.asarray(Image.open(png)).astype(np.int64)
        _png(tmp_path / "pred" / png.name, np.where(raw == 0, 255, raw - 1))
    out2 = tmp_path / "reduced.json"
    argv = ["score", "--gt-dir", annotations, "--pred-dir", str(tmp_path / "pred")]
    argv += ["--labels", str(reduced_labels), "--reduce-zero-label", "--out", str(out2)]
    assert main(argv) == 0
    reduced = json.loads(out2.read_text())["datasets"]["ade150"]
    assert reduced["mIoU"] == pytest.approx(100.0)
    assert [n for n, v in reduced["per_class"].items() if v is not None] == present


def test_suffix_selects_files_and_sub_folders_are_searched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Cityscapes layout: city sub-folders, and other label kinds next to the ones scored.
    argv = _setup(tmp_path, gt_suffix="_labelTrainIds")
    city = tmp_path / "gt" / "city"
    city.mkdir()
    for stem in GT:
        (tmp_path / "gt" / f"{stem}_labelTrainIds.png").rename(city / f"{stem}_labelTrainIds.png")
        _png(city / f"{stem}_labelIds.png", np.full((4, 4), 9))  # must not be read
    out = tmp_path / "m.json"
    assert main([*argv, "--gt-suffix", "_labelTrainIds.png", "--out", str(out)]) == 0
    entry = json.loads(out.read_text())["datasets"]["street"]
    assert entry["num_images"] == 2 and entry["mIoU"] == pytest.approx(50.0)

    _png(tmp_path / "pred" / "more" / "a.png", PRED["a"])  # the same stem twice
    assert main([*argv, "--gt-suffix", "_labelTrainIds"]) == 2
    err = capsys.readouterr().err
    assert "stem 'a'" in err and str(tmp_path / "pred" / "more" / "a.png") in err
    assert main([*argv, "--gt-suffix", "_nothing"]) == 2
    assert "ending in '_nothing.png'" in capsys.readouterr().err


# ---------------------------------------------------------------------- real Cityscapes sample
CITYSCAPES_TRAIN_IDS = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip
CITYSCAPES_NAMES = (
    "road sidewalk building wall fence pole traffic_light traffic_sign vegetation terrain sky "
    "person rider car truck bus train motorcycle bicycle"
).split()


def test_cityscapes_label_ids_mapped_to_train_ids_score_high_but_not_100(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt_dir = FIXTURES / "cityscapes_sample" / "gtFine"
    stem = "frankfurt_000000_000294"
    if not (gt_dir / f"{stem}_gtFine_labelIds.png").is_file():
        pytest.skip("shared Cityscapes fixture not available")
    table = np.full(256, 255, dtype=np.int64)
    for label_id, train_id in CITYSCAPES_TRAIN_IDS.items():
        table[label_id] = train_id
    label_ids = np.asarray(Image.open(gt_dir / f"{stem}_gtFine_labelIds.png"))
    _png(tmp_path / "pred" / "frankfurt" / f"{stem}.png", table[label_ids])
    labels = _labels(tmp_path, CITYSCAPES_NAMES, [255])
    out = tmp_path / "m.json"
    argv = ["score", "--gt-dir", str(gt_dir), "--gt-suffix", "_gtFine_labelTrainIds"]
    argv += ["--pred-dir", str(tmp_path / "pred"), "--labels", str(labels), "--out", str(out)]
    assert main(argv) == 0
    entry = json.loads(out.read_text())["datasets"]["street"]
    # About 77 boundary pixels disagree (the two files were resized separately).
    assert entry["num_images"] == 1
    assert entry["mIoU"] == pytest.approx(98.65, abs=0.05)
    assert entry["aAcc"] == pytest.approx(99.77, abs=0.02)
    present = {n for n, v in entry["per_class"].items() if v is not None}
    assert present == {"road", "sidewalk", "building", "fence", "pole", "traffic_sign",
                       "vegetation", "sky", "person", "car"}  # fmt: skip


def test_card_instead_of_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Cityscapes trainIds: road 0, sidewalk 1; prediction gets one of four pixels wrong.
    gt = np.array([[0, 0], [1, 255]], dtype=np.uint8)
    pred = np.array([[0, 1], [1, 1]], dtype=np.uint8)
    _png(tmp_path / "gt" / "a.png", gt)
    _png(tmp_path / "pred" / "a.png", pred)
    out = tmp_path / "m.json"
    argv = ["score", "--gt-dir", str(tmp_path / "gt"), "--pred-dir", str(tmp_path / "pred")]
    assert main([*argv, "--card", "cityscapes", "--out", str(out)]) == 0
    entry = json.loads(out.read_text())["datasets"]["cityscapes"]
    assert entry["per_class"]["road"] == pytest.approx(50.0)
    assert entry["per_class"]["sidewalk"] == pytest.approx(50.0)
    assert main(argv) == 2
    assert "exactly one of --labels" in capsys.readouterr().err
    rows = ["Idx,Ratio,Train,Val,Stuff,Name"] + [f"{i},0.1,1,1,1,c{i}" for i in range(1, 151)]
    (tmp_path / "objectInfo150.csv").write_text("\n".join(rows) + "\n")
    _png(tmp_path / "gt2" / "a.png", np.array([[1, 1], [2, 0]], dtype=np.uint8))
    _png(tmp_path / "pred2" / "a.png", np.array([[1, 2], [2, 2]], dtype=np.uint8))
    argv2 = ["score", "--gt-dir", str(tmp_path / "gt2"), "--pred-dir", str(tmp_path / "pred2")]
    card = ["--card", "ade20k-150", "--card-file", str(tmp_path / "objectInfo150.csv")]
    assert main([*argv2, *card, "--out", str(out)]) == 0
    entry = json.loads(out.read_text())["datasets"]["ade20k-150"]
    assert entry["per_class"]["c1"] == pytest.approx(50.0)
