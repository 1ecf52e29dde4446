"""Label encodings: colour-coded PNGs, grey labels saved as RGB, 16-bit and palette labels; a
colour-coded and an RGB-saved grey dataset train a few steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from babelseg.data.check import check_dataset
from babelseg.data.declaration import load_declarations
from babelseg.data.image_io import read_label_png
from babelseg.data.label_encoding import color_table
from babelseg.data.readers import make_reader
from babelseg.labels.space import ClassDef, LabelSpace

COLORS = {"road": (128, 64, 128), "car": (0, 0, 142), "sky": (70, 130, 180)}
LABELS = {"classes": [{"name": n, "color": list(c)} for n, c in COLORS.items()]}


def _dataset(root: Path, kind: str, n: int = 4, size: int = 32) -> None:
    """``n`` images whose label is road below, sky above, a car square; saved as ``kind``."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n):
        values = np.full((size, size), 2, dtype=np.uint8)  # sky
        values[size // 2 :] = 0  # road
        values[size // 2 - 4 : size // 2 + 4, 4 + i : 12 + i] = 1  # car
        image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "images" / f"im{i}.png")
        if kind == "color":
            palette = np.array(list(COLORS.values()), dtype=np.uint8)
            Image.fromarray(palette[values]).save(root / "labels" / f"im{i}.png")
        else:  # grey values saved as an RGB image
            Image.fromarray(np.repeat(values[..., None], 3, axis=2)).save(
                root / "labels" / f"im{i}.png"
            )


def _declare(tmp_path: Path) -> Path:
    _dataset(tmp_path / "colour_city", "color")
    _dataset(tmp_path / "grey_city", "rgb-grey")
    entries = [
        {
            "name": name,
            "format": "semantic-png",
            "root": name,
            "labels": LABELS,
            "splits": {
                "train": {"images": "images", "labels": "labels"},
                "val": {"images": "images", "labels": "labels"},
            },
            **({"options": {"label_encoding": "color"}} if name == "colour_city" else {}),
        }
        for name in ("colour_city", "grey_city")
    ]
    path = tmp_path / "datasets.yaml"
    path.write_text(yaml.safe_dump({"datasets": entries}))
    return path


def test_colour_and_rgb_grey_labels_read_as_values(tmp_path: Path):
    decls = load_declarations(_declare(tmp_path))
    for name in ("colour_city", "grey_city"):
        sample = make_reader(decls[name], "train")[1]
        assert sample.semantic[0, 0] == 2 and sample.semantic[-1, 0] == 0
        assert sample.semantic[16, 6] == 1
        report = check_dataset(decls[name])
        assert report.ok, report.splits["train"].problems
        assert report.splits["train"].pixel_counts["car"] == 4 * 64


def test_unknown_colours_are_listed(tmp_path: Path):
    path = _declare(tmp_path)
    bad = np.zeros((32, 32, 3), dtype=np.uint8)
    bad[:2] = (1, 2, 3)
    bad[2:5] = (9, 9, 200)
    Image.fromarray(bad).save(tmp_path / "colour_city" / "labels" / "im0.png")
    decl = load_declarations(path)["colour_city"]
    with pytest.raises(ValueError, match=r"\(9, 9, 200\): 96 px, \(1, 2, 3\): 64 px"):
        make_reader(decl, "train")[0]
    problems = check_dataset(decl).splits["train"].problems
    assert any("im0.png" in p and "(1, 2, 3)" in p for p in problems)
    # Black is ignore by default when no class is black.
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(
        tmp_path / "colour_city" / "labels" / "im0.png"
    )
    assert (make_reader(decl, "train")[0].semantic == 255).all()


def test_colour_table_errors():
    shared = LabelSpace(
        [ClassDef(name="a", color=(1, 1, 1)), ClassDef(name="b", color=(1, 1, 1))], name="s"
    )
    with pytest.raises(ValueError, match="'a' and 'b' share the colour"):
        color_table(shared, None, "x")
    with pytest.raises(ValueError, match="class 'c' has none"):
        color_table(LabelSpace([ClassDef(name="c")], name="s"), None, "x")


def test_rgb_with_differing_channels_names_the_option(tmp_path: Path):
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[0, 0] = (5, 6, 7)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    with pytest.raises(ValueError, match="label_encoding: color"):
        read_label_png(tmp_path / "c.png")
    sixteen = np.array([[0, 300], [65535, 7]], dtype=np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "s.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "s.png"), sixteen)
    pal = Image.fromarray(np.array([[0, 3], [2, 1]], dtype=np.uint8), mode="P")
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "p.png"), [[0, 3], [2, 1]])


def test_colour_coded_and_rgb_grey_datasets_train(tmp_path: Path):
    from babelseg.engine.config import load_config
    from babelseg.engine.trainer import train

    cfg = {
        "run_dir": str(tmp_path / "run"),
        "data": {
            "datasets_yaml": str(_declare(tmp_path)),
            "train": ["colour_city", "grey_city"],
            "batch_size": 2,
            "crop": [32, 32],
            "num_workers": 0,
        },
        "labels": {"encoder": "hash", "cache_dir": str(tmp_path / "cache")},
        "model": {
            "backbone": "tiny",
            "backbone_kwargs": {"widths": [8, 16, 16, 16], "depths": [1, 1, 1, 1], "norm": "gn"},
            "decoder_dim": 16,
        },
        "train": {"steps": 3, "checkpoint_every": 3, "warmup_steps": 1, "eval_at_end": False},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = train(load_config(path))
    assert result.steps == 3 and result.last_checkpoint is not None
    assert np.isfinite(result.final_loss) and result.final_loss > 0
