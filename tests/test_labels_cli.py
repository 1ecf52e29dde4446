"""`babelseg labels` helpers and options with the hash encoder (fast, no weights).

The real-MiniLM check (person <-> pedestrian) and the --json / --plot / --data tests go through
``babelseg.cli.main`` in the MiniLM/CLI test file; here the subcommand module is driven directly.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from babelseg.cli import labels_cmd
from babelseg.labels.cache import EmbeddingCache
from babelseg.labels.encoders import ENCODERS
from babelseg.labels.encoders.hash import HashTextEncoder


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    labels_cmd.add_arguments(parser)
    return labels_cmd.run(parser.parse_args(argv))


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("BABELSEG_CACHE", str(folder))
    return folder


def test_similarity_and_neighbours_by_hand() -> None:
    emb = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.6, 0.8]])
    sim = labels_cmd.similarity_matrix(emb)
    torch.testing.assert_close(sim[0], torch.tensor([1.0, 0.6, 0.0, 0.6]))
    nb = labels_cmd.nearest_neighbours(sim, ["a", "b", "c", "d"], top=2)
    # b and d tie for a: index order breaks the tie; d is b's exact twin.
    assert nb[0] == [("b", pytest.approx(0.6)), ("d", pytest.approx(0.6))]
    assert nb[1][0] == ("d", pytest.approx(1.0))
    assert [n for n, _ in nb[2]] == ["b", "d"]
    # top is capped at K-1.
    assert len(labels_cmd.nearest_neighbours(sim, ["a", "b", "c", "d"], top=10)[0]) == 3


def test_matrix_table_is_aligned_and_truncated_at_30() -> None:
    names = [f"class{i}" for i in range(31)]
    table = labels_cmd.format_matrix(torch.eye(31), names).splitlines()
    assert len(table) == 1 + 30 + 1
    assert table[-1] == "(showing the first 30 of 31 labels; --json or --plot show all)"
    assert "class30" not in "\n".join(table[:-1])
    small = labels_cmd.format_matrix(torch.tensor([[1.0, 0.25], [0.25, 1.0]]), ["a", "bb"])
    assert small.splitlines() == [
        " " * 9 + "a" + " " * 6 + "bb",
        "a    1.000   0.250",
        "bb   0.250   1.000",
    ]


def test_text_output_lists_neighbours_and_matrix(capsys: pytest.CaptureFixture) -> None:
    assert _run(["lane", "lane marking", "sky", "--encoder", "hash", "--top", "1"]) == 0
    out = capsys.readouterr().out
    sim = HashTextEncoder().encode(["lane", "lane marking", "sky"])
    s01 = float(sim[0] @ sim[1])
    assert "encoder hash-d256-n3, text mode name" in out
    assert f"  lane          lane marking {s01:.3f}\n" in out
    assert "Cosine similarity:" in out


def test_cache_is_used_by_default_and_skipped_with_no_cache(
    _cache_in_tmp: Path, capsys: pytest.CaptureFixture
) -> None:
    assert _run(["person", "car", "--encoder", "hash", "--no-cache"]) == 0
    assert not _cache_in_tmp.exists()
    capsys.readouterr()
    assert _run(["person", "car", "--encoder", "hash", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    stored = EmbeddingCache(_cache_in_tmp).lookup("hash-d256-n3", ["person", "car"], dim=256)
    assert sorted(stored) == ["car", "person"]
    assert report["encoder"] == "hash-d256-n3" and report["labels"] == ["person", "car"]


def test_dataset_and_description_modes_show_their_texts(capsys: pytest.CaptureFixture) -> None:
    argv = ["bus: A bus carries passengers.", "car", "--encoder", "hash", "--json"]
    assert _run([*argv, "--mode", "description"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["labels"] == ["bus", "car"]
    assert report["texts"] == [
        "bus: An image of bus. A bus carries passengers.",
        "car: An image of car.",
    ]
    assert _run([*argv, "--mode", "dataset", "--dataset", "vista"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["texts"][1] == "An image of car from the dataset vista"
    assert report["label_space"] == "vista"
    assert _run([*argv, "--mode", "dataset_description", "--dataset", "vista"]) == 0
    assert json.loads(capsys.readouterr().out)["texts"] == [
        "An image of bus from the dataset vista. A bus carries passengers.",
        "An image of car from the dataset vista.",
    ]
    assert _run([*argv, "--mode", "template", "--template", "{} on a street"]) == 0
    assert json.loads(capsys.readouterr().out)["texts"][1] == "car on a street"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "Nothing to show"),
        (["car", "--data", "d.yaml"], "not both"),
        (["car", "bus", "--encoder", "clip"], "needs --clip-model"),
        (
            ["car", "bus", "--encoder", "hash", "--clip-model", "x"],
            "only applies to --encoder clip",
        ),
        (["car", "bus", "--encoder", "hash", "--top", "0"], "--top must be at least 1"),
        (["car", "bus", "--encoder", "hash", "--mode", "dataset"], "needs a dataset name"),
        (["car", "car", "--encoder", "hash"], "Duplicate class name 'car'"),
    ],
)
def test_user_errors_are_value_errors(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _run(argv)


def test_data_file_with_one_dataset_needs_no_dataset_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "datasets.yaml").write_text(
        "datasets:\n"
        "  - name: only\n"
        "    format: semantic-png\n"
        "    root: only\n"
        "    labels: {classes: [road, sky]}\n"
        "    splits: {val: {images: images, labels: labels}}\n"
    )
    assert _run(["--data", str(tmp_path / "datasets.yaml"), "--encoder", "hash", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["label_space"] == "only" and report["labels"] == ["road", "sky"]
    with pytest.raises(ValueError, match=r"No dataset 'other'.*it declares: only"):
        _run(["--data", str(tmp_path / "datasets.yaml"), "--dataset", "other"])


def test_encoder_choices_match_the_factory() -> None:
    assert sorted(labels_cmd.ENCODER_CHOICES) == sorted(ENCODERS)
