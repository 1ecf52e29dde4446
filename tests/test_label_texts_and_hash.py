"""Label texts (every text mode), the hash text encoder and the encoder factory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from babelseg.labels.encoders.factory import build_text_encoder
from babelseg.labels.encoders.hash import HashTextEncoder, text_features
from babelseg.labels.space import ClassDef, LabelSpace
from babelseg.labels.texts import TEXT_MODES, class_text, encode_label_space, label_texts


def _space() -> LabelSpace:
    return LabelSpace(
        [
            ClassDef(name="bus", description="A bus is a road vehicle for many passengers."),
            ClassDef(name="sky"),
            ClassDef(name="tree", description="   "),
        ],
        name="street_a",
    )


# ---------------------------------------------------------------------- texts
def test_name_mode_gives_the_names() -> None:
    assert label_texts(_space(), mode="name") == ["bus", "sky", "tree"]


def test_template_mode_default_and_custom() -> None:
    assert label_texts(_space(), mode="template") == [
        "a photo of a bus.",
        "a photo of a sky.",
        "a photo of a tree.",
    ]
    custom = label_texts(_space(), mode="template", template="{} in the street")
    assert custom == ["bus in the street", "sky in the street", "tree in the street"]


@pytest.mark.parametrize("template", ["no field", "{} and {}", "{name}", "{0}", "{"])
def test_template_without_exactly_one_empty_field_is_rejected(template: str) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        label_texts(_space(), mode="template", template=template)


def test_description_mode_is_the_papers_sentence() -> None:
    # SentenceLabels.txt section 3: "bus: An image of bus. A bus is a road vehicle ..."
    assert label_texts(_space(), mode="description") == [
        "bus: An image of bus. A bus is a road vehicle for many passengers.",
        "sky: An image of sky.",  # no description: the sentence without one
        "tree: An image of tree.",  # blank description
    ]


def test_dataset_description_mode_completes_the_dataset_sentence() -> None:
    # AutoUniSeg.txt section 3.1: "An image of <label> from the dataset <dataset>" + description
    assert label_texts(_space(), mode="dataset_description") == [
        "An image of bus from the dataset street_a. A bus is a road vehicle for many passengers.",
        "An image of sky from the dataset street_a.",
        "An image of tree from the dataset street_a.",
    ]
    assert class_text(
        ClassDef(name="car", description=" A car drives. "), mode="dataset_description", dataset="v"
    ) == ("An image of car from the dataset v. A car drives.")
    with pytest.raises(ValueError, match="'dataset_description' needs a dataset name"):
        label_texts(LabelSpace.from_names(["car"]), mode="dataset_description")


def test_dataset_mode_uses_the_space_name_or_the_given_dataset() -> None:
    assert label_texts(_space(), mode="dataset") == [
        "An image of bus from the dataset street_a",
        "An image of sky from the dataset street_a",
        "An image of tree from the dataset street_a",
    ]
    assert class_text(ClassDef(name="car"), mode="dataset", dataset="vista") == (
        "An image of car from the dataset vista"
    )
    nameless = LabelSpace.from_names(["car"])
    assert label_texts(nameless, mode="dataset", dataset="d1") == [
        "An image of car from the dataset d1"
    ]
    with pytest.raises(ValueError, match="dataset name"):
        label_texts(nameless, mode="dataset")


def test_unknown_mode_lists_the_modes() -> None:
    with pytest.raises(ValueError) as err:
        label_texts(_space(), mode="sentence")
    assert "sentence" in str(err.value)
    for mode in TEXT_MODES:
        assert mode in str(err.value)
    with pytest.raises(
        ValueError, match="name, template, description, dataset, dataset_description"
    ):
        class_text(ClassDef(name="car"), mode="names")


def test_encode_label_space_rows_follow_the_class_order() -> None:
    enc = HashTextEncoder(dim=64)
    emb = encode_label_space(_space(), enc, mode="template")
    expected = enc.encode(["a photo of a bus.", "a photo of a sky.", "a photo of a tree."])
    assert emb.shape == (3, 64)
    assert torch.equal(emb, expected)


# ---------------------------------------------------------------------- hash encoder
def test_text_features_of_a_short_word() -> None:
    assert text_features("Car", ngram=3) == ["g:<ca", "g:car", "g:ar>", "w:car"]
    assert text_features("a", ngram=3) == ["g:<a>", "w:a"]
    assert text_features("!!", ngram=3) == ["t:!!"]


def test_hash_shapes_norms_and_empty_input() -> None:
    enc = HashTextEncoder(dim=32, ngram=3)
    assert enc.id == "hash-d32-n3"
    emb = enc.encode(["person", "lane marking", "a", "!!"])
    assert emb.shape == (4, 32) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(4))
    empty = enc.encode([])
    assert empty.shape == (0, 32) and empty.dtype == torch.float32


def test_hash_bucket_counts_by_hand() -> None:
    # One feature per text (a text without word characters): a one-hot +-1 row.
    enc = HashTextEncoder(dim=16)
    row = enc.encode(["??"])[0]
    assert int((row != 0).sum()) == 1
    assert float(row.abs().max()) == 1.0


def test_hash_similarity_shared_ngrams_positive_unrelated_lower() -> None:
    enc = HashTextEncoder(dim=256)
    emb = enc.encode(["traffic light", "traffic sign", "zebra"])
    sim = emb @ emb.T
    assert float(sim[0, 1]) > 0.3  # share "traffic" and its n-grams
    assert float(sim[0, 2]) < float(sim[0, 1])
    assert float(sim[1, 2]) < float(sim[0, 1])
    # Case-insensitive: same features, same vector.
    torch.testing.assert_close(enc.encode(["Traffic Light"])[0], emb[0])


def test_hash_is_deterministic_across_processes() -> None:
    texts = ["person", "lane marking", "rider"]
    here = HashTextEncoder(dim=48, ngram=3).encode(texts)
    code = (
        "import json; from babelseg.labels.encoders.hash import HashTextEncoder; "
        f"print(json.dumps(HashTextEncoder(dim=48, ngram=3).encode({texts!r}).tolist()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    there = torch.tensor(json.loads(out.stdout))
    assert torch.equal(here, there)


def test_hash_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="dim"):
        HashTextEncoder(dim=0)
    with pytest.raises(ValueError, match="not a string"):
        HashTextEncoder().encode(["ok", 3])  # type: ignore[list-item]


# ---------------------------------------------------------------------- factory
def test_factory_builds_hash_and_rejects_unknown_names() -> None:
    enc = build_text_encoder("hash", dim=8)
    assert isinstance(enc, HashTextEncoder) and enc.dim == 8
    with pytest.raises(ValueError, match="clip, hash, minilm") as err:
        build_text_encoder("bert")
    assert "bert" in str(err.value)
    with pytest.raises(ValueError, match="cannot be built"):
        build_text_encoder("hash", width=3)
