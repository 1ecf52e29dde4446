"""`babelseg predict` and `babelseg eval` with --mode slide / resize, --flip and --scales."""

import json

import numpy as np
import pytest
from PIL import Image
from tiny_runs import train_tiny_run

from babelseg.cli.main import main


@pytest.fixture(scope="module")
def run(tiny_synthworld, tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("mode_runs"), tiny_synthworld)


def _eval(run, out, *flags):
    assert main(["eval", "--run", str(run), "--datasets", "metro_drive", "--max-images", "3",
                 "--out", str(out), *flags]) == 0  # fmt: skip
    return json.loads(out.read_text())["datasets"]["metro_drive"]["mIoU"]


def test_eval_modes(run, tmp_path):
    whole = _eval(run, tmp_path / "whole.json")
    # one window over the whole image is the whole image
    assert _eval(run, tmp_path / "big.json", "--mode", "slide", "--window", "512") == (
        pytest.approx(whole, abs=0.5)
    )
    slid = _eval(run, tmp_path / "slide.json", "--mode", "slide", "--window", "32", "--stride",
                 "16", "--flip", "--scales", "0.75,1")  # fmt: skip
    assert 0.0 <= slid <= 100.0


def test_predict_modes(run, tiny_synthworld, tmp_path, capsys):
    src = sorted((tiny_synthworld / "metro_drive" / "images" / "val").iterdir())[0]
    big = np.asarray(Image.open(src).convert("RGB").resize((203, 101)))
    Image.fromarray(big).save(tmp_path / "big.png")
    outs: dict[str, np.ndarray] = {}
    for mode in ("whole", "slide", "resize"):
        out = tmp_path / mode
        flags = ["--mode", mode, "--window", "48", "--stride", "32", "--size", "40"]
        code = main(["predict", "--run", str(run), "--dataset", "metro_drive",
                     str(tmp_path / "big.png"), "--out", str(out), *flags])  # fmt: skip
        assert code == 0
        outs[mode] = np.asarray(Image.open(out / "big.png"))
        assert outs[mode].shape == (101, 203)
        assert (out / "big_overlay.png").is_file()
    values = set(np.unique(np.concatenate([o.ravel() for o in outs.values()])).tolist())
    labels = (tmp_path / "slide" / "labels.yaml").read_text()
    assert all(f"value: {v}\n" in labels for v in values)  # on-disk values of metro_drive


def test_bad_flags_are_one_clear_error(run, tmp_path, capsys):
    code = main(["predict", "--run", str(run), "--dataset", "metro_drive", str(tmp_path),
                 "--out", str(tmp_path / "o"), "--mode", "slide", "--window", "50"])  # fmt: skip
    assert code == 2 and "multiple of 4" in capsys.readouterr().err
    code = main(["eval", "--run", str(run), "--scales", "1,big"])
    assert code == 2 and "--scales" in capsys.readouterr().err
