"""Mislabelling checks of `babelseg datasets check`, on the real ADE20K sample copied at test time
(the detectron2 layout is written from it in tmp_path; nothing is committed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from babelseg.data.check import check_dataset
from babelseg.data.declaration import load_declarations
from babelseg.data.readers import make_reader

ADE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "ade20k_sample"
if not ADE.is_dir():
    ADE = Path("/work/shared/fixtures/ade20k_sample")
pytestmark = pytest.mark.skipif(not ADE.is_dir(), reason="ADE20K sample fixture not available")


@pytest.fixture
def ade(tmp_path: Path) -> Path:
    """The ADE20K sample plus its detectron2 layout (value = index 0..149, 255 unlabelled)."""
    root = tmp_path / "ade"
    shutil.copytree(ADE, root)
    out = root / "annotations_detectron2"
    out.mkdir()
    for f in sorted((root / "annotations").glob("*.png")):
        raw = np.asarray(Image.open(f)).astype(np.int64)
        Image.fromarray(np.where(raw == 0, 255, raw - 1).astype(np.uint8)).save(out / f.name)
    return root


def _decl(root: Path, labels, annotations: str, options=None):
    entry = {
        "name": "ade",
        "format": "semantic-png",
        "root": str(root),
        "labels": labels,
        "splits": {"val": {"images": "images", "labels": annotations}},
    }
    if options:
        entry["options"] = options
    path = root.parent / "datasets.yaml"
    path.write_text(yaml.safe_dump({"datasets": [entry]}))
    return load_declarations(path)["ade"]


def _problems(decl) -> str:
    report = check_dataset(decl)
    return "\n".join(report.problems + report.splits["val"].problems)


def test_detectron2_layout_with_the_ade_card_fails_naming_the_fix(ade: Path):
    text = _problems(_decl(ade, {"card": "ade20k-150"}, "annotations_detectron2"))
    assert "0 is most likely a class" in text and "`values: index`" in text


def test_detectron2_layout_declared_right_passes(ade: Path):
    decl = _decl(ade, {"card": "ade20k-150", "values": "index"}, "annotations_detectron2")
    report = check_dataset(decl)
    assert report.ok, report.splits["val"].problems
    original = check_dataset(_decl(ade, {"card": "ade20k-150"}, "annotations"))
    assert original.ok
    # Same pixels per class in both layouts: nothing is shifted.
    assert report.splits["val"].pixel_counts == original.splits["val"].pixel_counts
    assert report.splits["val"].pixel_counts["wall"] > 0


def test_card_with_reduce_zero_label_fails_in_check_and_reader(ade: Path):
    decl = _decl(ade, {"card": "ade20k-150"}, "annotations", {"reduce_zero_label": True})
    text = _problems(decl)
    assert "Remove reduce_zero_label" in text
    with pytest.raises(ValueError, match="Remove reduce_zero_label"):
        make_reader(decl, "val")


def test_detectron2_layout_with_reduce_zero_label_fails(ade: Path):
    labels = {"card": "ade20k-150", "values": "index"}
    decl = _decl(ade, labels, "annotations_detectron2", {"reduce_zero_label": True})
    assert "remove reduce_zero_label" in _problems(decl)


def test_mostly_ignored_and_shift_hints(tmp_path: Path):
    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(root / "images" / "a.png")
    values = np.full((4, 4), 255, dtype=np.uint8)
    values[0, :3] = [1, 2, 3]  # 255 on 13 of 16 pixels, classes stored as 1..3
    Image.fromarray(values).save(root / "labels" / "a.png")
    labels = {"classes": ["a", "b", "c"]}  # values 0..2, 255 ignore
    decl = _decl(root, labels, "labels")
    decl.splits["val"]["images"] = root / "images"
    text = _problems(decl)
    assert "ignore value 255 carries 81% of all pixels" in text
    assert "set reduce_zero_label: true" in text  # value 3 is outside 0..2, 1..3 fits after -1
    ok = _decl(root, labels, "labels", {"reduce_zero_label": True, "confirmed_ignore": [255]})
    assert check_dataset(ok).ok
