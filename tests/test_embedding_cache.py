"""The on-disk embedding cache and the caching encoder wrapper."""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from babelseg.labels.cache import CachedTextEncoder, EmbeddingCache, default_cache_dir
from babelseg.labels.encoders.hash import HashTextEncoder


class CountingEncoder:
    """A hash encoder that records every text it is asked to encode."""

    def __init__(self, dim: int = 16, id: str = "counting") -> None:
        self._inner = HashTextEncoder(dim=dim)
        self.id = id
        self.dim = dim
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        self.calls.append(list(texts))
        return self._inner.encode(texts)

    @property
    def seen(self) -> list[str]:
        return [t for call in self.calls for t in call]


def _cached(folder: Path, **kwargs) -> tuple[CachedTextEncoder, CountingEncoder]:
    inner = CountingEncoder(**kwargs)
    return CachedTextEncoder(inner, EmbeddingCache(folder)), inner


@pytest.fixture(autouse=True)
def _no_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache must never unpickle anything."""

    def refuse(*args, **kwargs):
        raise AssertionError("the embedding cache used pickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)


def test_second_run_with_new_objects_encodes_nothing(tmp_path: Path) -> None:
    texts = ["person", "car", "person", "lane marking"]
    first, inner1 = _cached(tmp_path)
    a = first.encode(texts)
    assert inner1.seen == ["person", "car", "lane marking"]  # repeats encoded once
    assert first.encoded == 3
    assert a.shape == (4, 16)
    assert torch.equal(a[0], a[2])

    second, inner2 = _cached(tmp_path)  # new encoder, new cache object, same folder
    b = second.encode(["lane marking", "person", "car"])
    assert inner2.calls == [] and second.encoded == 0
    assert torch.equal(b, a[[3, 0, 1]])  # request order
    assert torch.equal(b, HashTextEncoder(dim=16).encode(["lane marking", "person", "car"]))


def test_partial_hit_encodes_only_the_missing_texts(tmp_path: Path) -> None:
    first, _ = _cached(tmp_path)
    first.encode(["road", "sky"])
    second, inner = _cached(tmp_path)
    out = second.encode(["tree", "sky", "road", "wall"])
    assert inner.seen == ["tree", "wall"]
    assert torch.equal(out, HashTextEncoder(dim=16).encode(["tree", "sky", "road", "wall"]))
    # The cache now holds all four texts.
    stored = EmbeddingCache(tmp_path).lookup("counting", ["road", "sky", "tree", "wall"], dim=16)
    assert sorted(stored) == ["road", "sky", "tree", "wall"]


def test_encoder_ids_do_not_mix(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.store("enc-a", ["car"], torch.tensor([[1.0, 0.0]]))
    cache.store("enc-b", ["car"], torch.tensor([[0.0, 1.0]]))
    assert torch.equal(cache.lookup("enc-a", ["car"], dim=2)["car"], torch.tensor([1.0, 0.0]))
    assert torch.equal(cache.lookup("enc-b", ["car"], dim=2)["car"], torch.tensor([0.0, 1.0]))
    assert cache.lookup("enc-c", ["car"], dim=2) == {}
    assert cache.path_for("enc-a") != cache.path_for("enc-b")
    # Ids that differ only in unsafe characters get different files.
    assert cache.path_for("a/b") != cache.path_for("a:b")

    a, inner_a = _cached(tmp_path, id="one")
    b, inner_b = _cached(tmp_path, id="two")
    a.encode(["person"])
    b.encode(["person"])
    assert inner_a.seen == ["person"] and inner_b.seen == ["person"]


def test_store_merges_and_keeps_existing_entries(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.store("e", ["x", "y"], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    cache.store("e", ["y", "z"], torch.tensor([[0.6, 0.8], [0.8, 0.6]]))
    got = EmbeddingCache(tmp_path).lookup("e", ["z", "y", "x", "w"], dim=2)
    assert list(got) == ["z", "y", "x"]
    assert torch.equal(got["x"], torch.tensor([1.0, 0.0]))
    assert torch.equal(got["y"], torch.tensor([0.6, 0.8]))  # overwritten
    assert torch.equal(got["z"], torch.tensor([0.8, 0.6]))
    assert not list(tmp_path.glob("*.tmp"))  # no temporary files left behind


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_file_warns_with_its_path_and_is_rebuilt(tmp_path: Path, damage: str) -> None:
    first, _ = _cached(tmp_path)
    want = first.encode(["person", "car"])
    path = EmbeddingCache(tmp_path).path_for("counting")
    assert path.is_file()
    if damage == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(b"this is not a safetensors file at all \x00\x01\x02" * 3)

    second, inner = _cached(tmp_path)
    with pytest.warns(UserWarning, match="rebuilt") as record:
        got = second.encode(["car", "person"])
    assert any(str(path) in str(w.message) for w in record)
    assert inner.seen == ["car", "person"]  # nothing trusted from the damaged file
    assert torch.equal(got, want[[1, 0]])

    third, inner3 = _cached(tmp_path)  # rebuilt: read back without warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = third.encode(["person", "car"])
    assert inner3.calls == []
    assert torch.equal(again, want)


def test_tampered_vectors_fail_the_checksum(tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    cache = EmbeddingCache(tmp_path)
    cache.store("e", ["x"], torch.tensor([[1.0, 0.0]]))
    path = cache.path_for("e")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    save_file({"embeddings": torch.tensor([[0.0, 1.0]])}, str(path), metadata=meta)
    with pytest.warns(UserWarning, match="checksum"):
        assert cache.lookup("e", ["x"], dim=2) == {}


def test_other_dimension_counts_as_corrupt(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.store("e", ["x"], torch.tensor([[1.0, 0.0]]))
    with pytest.warns(UserWarning, match="2-d vectors"):
        assert cache.lookup("e", ["x"], dim=3) == {}


def test_empty_request_and_clear(tmp_path: Path) -> None:
    enc, inner = _cached(tmp_path)
    empty = enc.encode([])
    assert empty.shape == (0, 16) and inner.calls == []
    enc.encode(["a"])
    cache = EmbeddingCache(tmp_path)
    assert cache.clear("counting") == 1
    assert cache.clear() == 0
    assert cache.lookup("counting", ["a"], dim=16) == {}


def test_default_cache_dir_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BABELSEG_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("BABELSEG_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "babelseg" / "embeddings"


def test_lazy_exports_of_babelseg_labels() -> None:
    import babelseg.labels as labels

    assert labels.CachedTextEncoder is CachedTextEncoder
    assert labels.EmbeddingCache is EmbeddingCache
    assert sorted(labels.ENCODERS) == ["clip", "hash", "minilm"]
    assert isinstance(labels.build_text_encoder("hash", dim=4), HashTextEncoder)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        labels.Nope  # noqa: B018
