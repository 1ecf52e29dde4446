"""The CLIP text encoder, fully offline: a tiny random CLIP text tower and a hand-made tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_clip import tiny_clip_text_model, tiny_clip_tokenizer

from babelseg.labels.encoders.clip import ClipTextEncoder, clip_encoder_id
from babelseg.labels.encoders.factory import build_text_encoder


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_clip")
    tok = tiny_clip_tokenizer()
    tiny_clip_text_model(len(tok)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_tokenizer_sanity() -> None:
    tok = tiny_clip_tokenizer()
    assert tok.tokenize("car person") == ["car</w>", "p", "e", "r", "s", "o", "n</w>"]
    assert tok("car")["input_ids"] == [0, len(tok) - 1, 1]  # start, car</w>, end


def test_loads_from_a_folder_and_encodes(clip_dir: Path) -> None:
    enc = ClipTextEncoder(str(clip_dir))
    assert enc.dim == 16
    assert enc.max_length == 24  # the model's context, not the tokenizer's huge default
    assert enc.id.startswith(f"clip-{clip_dir.name}-")
    assert enc.id == clip_encoder_id(str(clip_dir))
    emb = enc.encode(["car", "person", "car", "traffic light"])
    assert emb.shape == (4, 16) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(emb[0], emb[2])
    assert float((emb[0] - emb[1]).abs().max()) > 1e-3
    assert float((emb[1] - emb[3]).abs().max()) > 1e-3
    assert enc.encode([]).shape == (0, 16)

    again = ClipTextEncoder(str(clip_dir)).encode(["car", "person"])  # deterministic reload
    torch.testing.assert_close(again, emb[:2])


def test_padding_does_not_change_embeddings(clip_dir: Path) -> None:
    texts = ["car", "a person on a bicycle", "sky"]
    batched = ClipTextEncoder(str(clip_dir)).encode(texts)
    one_by_one = ClipTextEncoder(str(clip_dir), batch_size=1).encode(texts)
    torch.testing.assert_close(batched, one_by_one, atol=1e-5, rtol=1e-5)


def test_long_texts_are_truncated_to_the_context(clip_dir: Path) -> None:
    enc = ClipTextEncoder(str(clip_dir))
    emb = enc.encode(["x " * 100])
    assert emb.shape == (1, 16)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(1))


def test_from_modules_matches_the_folder(clip_dir: Path) -> None:
    tok = tiny_clip_tokenizer()
    model = tiny_clip_text_model(len(tok))
    enc = ClipTextEncoder.from_modules(model, tok, id="clip-test", batch_size=2)
    assert enc.id == "clip-test" and enc.dim == 16
    texts = ["car", "person", "sky"]
    torch.testing.assert_close(enc.encode(texts), ClipTextEncoder(str(clip_dir)).encode(texts))
    with pytest.raises(ValueError, match="id"):
        ClipTextEncoder.from_modules(model, tok, id="")


def test_factory_builds_clip(clip_dir: Path) -> None:
    enc = build_text_encoder("clip", name_or_path=str(clip_dir))
    assert isinstance(enc, ClipTextEncoder) and enc.dim == 16


def test_missing_or_empty_folder_is_a_file_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        ClipTextEncoder(str(tmp_path / "nowhere"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=str(empty)):
        ClipTextEncoder(str(empty))


def test_encoder_id_of_hub_names_and_resaved_weights(tmp_path: Path) -> None:
    assert clip_encoder_id("openai/clip-vit-base-patch32") == "clip-openai/clip-vit-base-patch32"
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"1234")
    before = clip_encoder_id(str(folder))
    assert before == clip_encoder_id(str(folder))
    (folder / "model.safetensors").write_bytes(b"123456")
    assert clip_encoder_id(str(folder)) != before
