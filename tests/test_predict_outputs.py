"""`babelseg predict` on many inputs: every input gets its own outputs (relative paths kept,
extensions disambiguated, collisions refused), folders are searched recursively, a bad image is
reported and skipped, outputs are written atomically."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from PIL import Image

from babelseg.cli.main import main
from babelseg.data.image_limits import DEFAULT_MAX_IMAGE_PIXELS, set_max_image_pixels
from babelseg.engine.config import load_config
from babelseg.engine.trainer import train
from babelseg.inference.output_names import collect_images, plan_outputs


@pytest.fixture(scope="module")
def run_dir(tiny_synthworld, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("predict_run")
    overrides = [
        f"run_dir={folder / 'run'}",
        f"data.datasets_yaml={tiny_synthworld / 'datasets.yaml'}",
        "data.train=[metro_drive]",
        "data.batch_size=2",
        "data.crop=[32, 32]",
        "data.num_workers=0",
        "labels.encoder=hash",
        f"labels.cache_dir={folder / 'cache'}",
        "model.backbone_kwargs={widths: [8, 8, 8, 8], depths: [1, 1, 1, 1], norm: gn}",
        "model.decoder_dim=16",
        "train.steps=1",
        "train.eval_at_end=false",
    ]
    return train(load_config(None, overrides)).run_dir


def _image(path: Path, size: tuple[int, int] = (64, 72), seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)
    return path


def _predict(run_dir: Path, *inputs: Path | str, out: Path, labels: str = "road, sky") -> int:
    args = ["predict", "--run", str(run_dir), "--labels", labels, "--out", str(out)]
    return main([*args, *(str(i) for i in inputs)])


def test_same_names_in_one_folder_and_in_sub_folders_all_get_outputs(run_dir, tmp_path, capsys):
    src = tmp_path / "val"
    _image(src / "photo.png", seed=1)
    _image(src / "photo.jpg", seed=2)
    _image(src / "frankfurt" / "img.png", seed=3)
    _image(src / "lindau" / "img.png", seed=4)
    out = tmp_path / "pred"
    assert _predict(run_dir, src, out=out) == 0
    for name in ("photo_png", "photo_jpg", "frankfurt/img", "lindau/img"):
        assert (out / f"{name}.png").is_file() and (out / f"{name}_overlay.png").is_file()
    assert "wrote 4 of 4 predictions" in capsys.readouterr().out


def test_two_inputs_writing_the_same_output_are_refused_before_predicting(
    run_dir, tmp_path, capsys
):
    a, b = _image(tmp_path / "a" / "x.png"), _image(tmp_path / "b" / "x.png")
    out = tmp_path / "pred"
    assert _predict(run_dir, a.parent, b.parent, out=out) == 2
    err = capsys.readouterr().err
    assert "x.png" in err and str(a) in err and str(b) in err
    assert not out.exists()


def test_a_label_png_and_another_images_overlay_collide():
    found = [
        (Path("p.png"), PurePosixPath("p.png")),
        (Path("p_overlay.jpg"), PurePosixPath("p_overlay.jpg")),
    ]
    with pytest.raises(ValueError, match=r"p_overlay\.png by p\.png and p_overlay\.jpg"):
        plan_outputs(found)


def test_outputs_inside_the_input_folder_are_not_inputs(tmp_path):
    _image(tmp_path / "a.png")
    _image(tmp_path / "pred" / "a.png")  # an earlier run's output
    found = collect_images([str(tmp_path)], exclude=tmp_path / "pred")
    assert [str(rel) for _, rel in found] == ["a.png"]


def test_bad_images_are_reported_and_the_rest_predicted(run_dir, tmp_path, capsys):
    from test_image_limits import write_bomb

    src = tmp_path / "in"
    _image(src / "good.png")
    write_bomb(src / "bomb.png")
    truncated = _image(src / "cut.png", size=(96, 96))
    truncated.write_bytes(truncated.read_bytes()[:200])
    out = tmp_path / "pred"
    assert _predict(run_dir, src, out=out) == 1
    captured = capsys.readouterr()
    assert (out / "good.png").is_file() and not (out / "bomb.png").exists()
    assert "wrote 1 of 3 predictions" in captured.out
    assert "bomb.png" in captured.err and "cut.png" in captured.err
    assert "Traceback" not in captured.err


def test_max_pixels_flag_refuses_larger_images(run_dir, tmp_path, capsys):
    src = _image(tmp_path / "in" / "big.png", size=(40, 40))
    try:
        assert _predict(run_dir, "--max-pixels", "100", src, out=tmp_path / "pred") == 1
    finally:
        set_max_image_pixels(DEFAULT_MAX_IMAGE_PIXELS)
    err = capsys.readouterr().err
    assert "big.png" in err and "--max-pixels N" in err


@pytest.mark.parametrize("labels", ["", " , ,"])
def test_an_empty_vocabulary_is_one_clear_error(run_dir, tmp_path, capsys, labels):
    src = _image(tmp_path / "a.png")
    assert _predict(run_dir, src, out=tmp_path / "pred", labels=labels) == 2
    err = capsys.readouterr().err
    assert "--labels" in err and "names no label" in err and "Traceback" not in err


def test_outputs_are_written_atomically(run_dir, tmp_path, monkeypatch):
    from babelseg.inference import atomic_files

    src = _image(tmp_path / "a.png")
    out = tmp_path / "pred"
    original = atomic_files.Image.Image.save

    def dies_mid_write(self, fp, *args, **kwargs):
        original(self, fp, *args, **kwargs)
        raise KeyboardInterrupt  # killed after the bytes, before the rename

    monkeypatch.setattr(atomic_files.Image.Image, "save", dies_mid_write)
    with pytest.raises(KeyboardInterrupt):
        _predict(run_dir, src, out=out)
    assert not (out / "a.png").exists()  # no partial file under the final name
    assert not [p for p in out.iterdir() if p.suffix == ".tmp"]  # and no temporary left
