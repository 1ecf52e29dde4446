"""babelseg export: ONNX (run with onnxruntime), TorchScript and torch.export files match eager."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_runs import train_tiny_run

from babelseg.cli.main import main
from babelseg.inference.api import SegmentationModel
from babelseg.inference.export import ExportableSegmenter, check_exportable, run_exported
from babelseg.inference.predictor import Predictor
from babelseg.inference.windows import network_input

pytest.importorskip("onnxruntime", reason="the test extra installs onnxruntime")


@pytest.fixture(scope="module")
def run(tiny_synthworld, tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("export_runs"), tiny_synthworld)


@pytest.fixture(scope="module")
def samples(tiny_synthworld):
    """Two real SynthWorld images resized to 64 x 96, as float32[2, 3, 64, 96] in 0..1."""
    paths = sorted((tiny_synthworld / "metro_drive" / "images" / "val").iterdir())[:2]
    arrays = [np.asarray(Image.open(p).convert("RGB").resize((96, 64))) for p in paths]
    return np.stack(arrays), torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


def test_onnx_with_a_baked_vocabulary_matches_eager_and_the_python_api(run, samples, tmp_path):
    out = tmp_path / "model.onnx"
    args = ["export", "--run", str(run), "--format", "onnx", "--dataset", "metro_drive"]
    assert main([*args, "--size", "64x96", "--out", str(out)]) == 0
    info = json.loads((tmp_path / "model.onnx.json").read_text())
    predictor = Predictor.from_checkpoint(run)
    space, text = predictor.dataset_vocabulary("metro_drive")
    assert info["labels"] == space.names and "multiples of 32" in info["size"]
    arrays, images = samples
    got = run_exported(out, "onnx", (images,))  # onnxruntime
    eager = ExportableSegmenter(recipe=predictor.recipe, text=text, dataset="metro_drive")
    with torch.no_grad():
        expected = eager(images).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    # ... and the Python API's scores of the same images
    fn = SegmentationModel(predictor=predictor).scores_fn(text, dataset="metro_drive")
    with torch.no_grad():
        api = fn(torch.stack([network_input(a) for a in arrays])).numpy()
    np.testing.assert_allclose(got, api, atol=1e-4, rtol=0)
    bigger = torch.rand(1, 3, 128, 64)  # another batch and size
    with torch.no_grad():
        np.testing.assert_allclose(
            run_exported(out, "onnx", (bigger,)), eager(bigger).numpy(), atol=1e-4, rtol=0
        )


def test_torchscript_matches_eager_at_its_size(run, samples, tmp_path):
    out = tmp_path / "model.pt"
    code = main(["export", "--run", str(run), "--format", "torchscript", "--labels",
                 "road, car, person, sky", "--size", "64x96", "--out", str(out)])  # fmt: skip
    assert code == 0
    predictor = Predictor.from_checkpoint(run)
    space = predictor.space_from_names(["road", "car", "person", "sky"])
    eager = ExportableSegmenter(recipe=predictor.recipe, text=predictor.vocabulary(space))
    images = samples[1]
    with torch.no_grad():
        expected = eager(images).numpy()
    got = run_exported(out, "torchscript", (images,))
    assert got.shape == (2, 4, 16, 24)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_exported_program_with_text_input_gives_label_maps(run, samples, tmp_path):
    out = tmp_path / "model.pt2"
    code = main(["export", "--run", str(run), "--format", "exported-program", "--output",
                 "labels", "--size", "64x64", "--out", str(out)])  # fmt: skip
    assert code == 0
    assert "text" in json.loads((tmp_path / "model.pt2.json").read_text())["inputs"]
    predictor = Predictor.from_checkpoint(run)
    _, text = predictor.dataset_vocabulary("vista_roads")
    images = samples[1]  # 64 x 96: not the example size
    got = run_exported(out, "exported-program", (images, text))
    eager = ExportableSegmenter(recipe=predictor.recipe, text=None, output="labels")
    with torch.no_grad():
        expected = eager(images, text).numpy()
    assert got.shape == (2, 64, 96) and got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)


def test_what_cannot_export_says_why(run, tmp_path, capsys):
    mask_recipe = SimpleNamespace(
        predicts_segments=True, cfg=SimpleNamespace(recipe=SimpleNamespace(name="lmseg"))
    )
    with pytest.raises(ValueError, match="per-pixel recipes"):
        check_exportable(mask_recipe)
    code = main(["export", "--run", str(run), "--format", "onnx", "--size", "50x64",
                 "--out", str(tmp_path / "x.onnx")])  # fmt: skip
    assert code == 2 and "multiples of 32" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
