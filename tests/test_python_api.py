"""babelseg.load / predict: inputs of every kind, vocabularies, result objects, the README."""

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_runs import train_tiny_run

import babelseg
from babelseg.inference.full_resolution import probabilities
from babelseg.inference.predictor import Predictor

VOCAB = ["road", "car", "person", "sky"]


@pytest.fixture(scope="module")
def sentence_run(tiny_synthworld, tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("api_runs"), tiny_synthworld)


@pytest.fixture(scope="module")
def model(sentence_run):
    return babelseg.load(sentence_run)


@pytest.fixture(scope="module")
def street(tiny_synthworld):
    """A real SynthWorld image (PIL) and its path."""
    path = sorted((tiny_synthworld / "metro_drive" / "images" / "val").iterdir())[0]
    return Image.open(path).convert("RGB"), path


def test_readme_three_lines_run_as_written(sentence_run, street, tmp_path, monkeypatch):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Use a trained model from Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    os.symlink(sentence_run, tmp_path / "runs" / "default")
    street[0].save(tmp_path / "street.jpg")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    result = namespace["result"]
    assert result.segments, "labelled segments out"
    assert {s.label for s in result.segments} <= set(VOCAB)
    masks = np.stack([s.mask for s in result.segments])
    assert masks.dtype == bool and masks.shape[1:] == np.asarray(street[0]).shape[:2]
    assert (masks.sum(0) == 1).all()  # semantic segments partition the image
    assert all(0.0 <= s.score <= 1.0 for s in result.segments)
    written = Image.open(tmp_path / "street_overlay.png")
    assert written.size[0] > street[0].size[0]  # overlay plus a legend panel


def test_every_input_kind_gives_the_same_labels(model, street):
    pil, path = street
    arr = np.asarray(pil)
    chw = torch.from_numpy(arr.copy()).permute(2, 0, 1)
    inputs = [path, str(path), pil, arr, chw, chw.float() / 255.0]
    results = model.predict(inputs, labels=VOCAB)
    assert isinstance(results, list) and len(results) == len(inputs)
    for r in results[1:]:
        np.testing.assert_array_equal(r.label_map, results[0].label_map)
    assert results[0].name == str(path) and results[2].name == "image 2"
    single = model.predict(pil, labels=", ".join(VOCAB))  # one image -> one result
    np.testing.assert_array_equal(single.label_map, results[0].label_map)
    batch = model.predict(np.stack([arr, arr[:, ::-1]]), labels=VOCAB)  # [B, H, W, 3]
    assert len(batch) == 2
    np.testing.assert_array_equal(batch[0].label_map, single.label_map)


def test_batches_mix_sizes_and_keep_order(model, street):
    arr = np.asarray(street[0])
    small = arr[:20, :36]
    alone = [model.predict(x, labels=VOCAB).label_map for x in (arr, small)]
    got = model.predict([arr, small, arr], labels=VOCAB, batch_size=2)
    assert [r.label_map.shape for r in got] == [arr.shape[:2], small.shape[:2], arr.shape[:2]]
    np.testing.assert_array_equal(got[1].label_map, alone[1])
    np.testing.assert_array_equal(got[2].label_map, alone[0])


def test_matches_the_predictor(model, sentence_run, street):
    arr = np.asarray(street[0])
    assert arr.shape[0] % 4 == 0 and arr.shape[1] % 4 == 0  # where both align cells the same way
    predictor = Predictor.from_checkpoint(sentence_run)
    space, text = predictor.dataset_vocabulary("metro_drive")
    expected = predictor.predict(arr, text, dataset="metro_drive")
    got = model.predict(arr, dataset="metro_drive")
    assert got.labels == space.names
    assert (got.label_map == expected).mean() > 0.999


def test_segments_scores_and_lookups(model, street):
    result = model.predict(street[0], labels=VOCAB)
    probs = probabilities(result.scores, "softmax")  # [K, h, w]
    rows = np.arange(result.label_map.shape[0]) // 4
    cols = np.arange(result.label_map.shape[1]) // 4
    per_pixel = probs.numpy()[result.label_map, rows[:, None], cols[None, :]]
    for seg in result.segments:
        assert seg.label == VOCAB[seg.label_index]
        assert seg.score == pytest.approx(per_pixel[seg.mask].mean(), abs=1e-5)
    areas = [s.area for s in result.segments]
    assert areas == sorted(areas, reverse=True)
    assert result.present == [s.label for s in result.segments]
    top = result.top_labels(3, 5, k=4)
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)
    assert sum(p for _, p in top) == pytest.approx(1.0, abs=1e-5)
    assert top[0][0] == VOCAB[int(probs[:, 0, 1].argmax())]
    heat = result.heatmap("car")
    assert heat.shape == result.label_map.shape and 0.0 <= heat.min() <= heat.max() <= 1.0
    with pytest.raises(ValueError, match="outside"):
        result.top_labels(10_000, 0)


def test_save_overlay_and_label_png(model, street, tmp_path):
    result = model.predict(street[0], labels=VOCAB)
    result.save(tmp_path / "sub" / "overlay.png")
    labels = result.save(tmp_path / "labels.png", kind="labels")
    np.testing.assert_array_equal(np.asarray(Image.open(labels)), result.label_map)
    assert Image.open(tmp_path / "sub" / "overlay.png").size[1] >= result.label_map.shape[0]
    with pytest.raises(ValueError, match="overlay"):
        result.save(tmp_path / "x.png", kind="colours")


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (42, TypeError, "Accepted: a path"),
        ({"image": 1}, TypeError, "cannot predict a dict"),
        (np.zeros((8, 8, 3), dtype=np.float32), ValueError, "must be uint8"),
        (np.zeros((8, 8, 5), dtype=np.uint8), ValueError, r"\[H, W, 3\]"),
        (torch.zeros(8, 8, 3), ValueError, "channels-first"),
        (torch.full((3, 8, 8), 2.0), ValueError, "0..1"),
        ([], ValueError, "empty list"),
        ("no/such/image.png", FileNotFoundError, "no/such/image.png"),
    ],
)
def test_wrong_inputs_say_what_is_accepted(model, bad, error, message):
    with pytest.raises(error, match=message):
        model.predict(bad, labels=VOCAB)


def test_vocabulary_must_be_exactly_one(model, street):
    with pytest.raises(ValueError, match="exactly one vocabulary"):
        model.predict(street[0])
    with pytest.raises(ValueError, match="exactly one vocabulary"):
        model.predict(street[0], labels=VOCAB, dataset="metro_drive")
    with pytest.raises(ValueError, match="Unknown dataset"):
        model.predict(street[0], dataset="nowhere")
    with pytest.raises(ValueError, match="unified"):
        model.predict(street[0], space="unified")  # a sentence run has no unified space
    with pytest.raises(TypeError, match="labels must be"):
        model.predict(street[0], labels=[1, 2])
    assert "metro_drive" in model.datasets and model.recipe_name == "sentence"


def test_mask_recipes_add_panoptic_and_instance_segments(tiny_synthworld, tmp_path, street):
    run = train_tiny_run(tmp_path, tiny_synthworld, recipe="lmseg", steps=2)
    lmseg = babelseg.load(run)
    assert lmseg.predicts_segments
    result = lmseg.predict(street[0], labels=VOCAB, things=["car", "person"])
    assert result.normalisation == "sum" and result.panoptic is not None
    ids = result.panoptic.segment_ids
    for seg in result.panoptic_segments:
        np.testing.assert_array_equal(seg.mask, ids == seg.id)
        assert seg.label in VOCAB and 0.0 <= seg.score <= 1.0
    instances = result.instance_segments
    assert instances is not None
    assert [s.score for s in instances] == sorted((s.score for s in instances), reverse=True)
    assert all(s.mask.shape == ids.shape for s in instances)
    slid = lmseg.predict(street[0], labels=VOCAB, mode="slide", window=32, stride=16)
    assert slid.panoptic_segments is None and slid.segments  # semantic only off the one pass
    with pytest.raises(ValueError, match="not labels"):
        lmseg.predict(street[0], labels=VOCAB, things=["lorry"])
