"""On-disk embedding cache keyed by (encoder id, text), and an encoder wrapper that uses it.

One file per encoder id, ``<directory>/<safe id>.safetensors``: a single ``float32[N, D]`` tensor
``embeddings`` with the N texts (JSON), the encoder id, D and a BLAKE2b checksum of texts and
vectors in the safetensors metadata. One file keeps index and vectors consistent; it is read with
safetensors (no pickle) and validated, and a corrupt, truncated or inconsistent file is reported
with ``warnings.warn`` and rebuilt. Writes go to a temporary file in the same folder that is
fsynced and then ``os.replace``-d, so readers never see a half-written file. Writers re-read the
file and merge under an advisory lock (``fcntl.flock`` where available), so several processes can
share one cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from babelseg.labels.encoders.base import TextEncoder

try:  # POSIX advisory locks; without them atomic replace still prevents torn files.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

CACHE_ENV = "BABELSEG_CACHE"
"""Environment variable naming the embedding-cache folder."""

FORMAT = "babelseg-embeddings-v1"
_TENSOR = "embeddings"


def default_cache_dir() -> Path:
    """``$BABELSEG_CACHE`` when set, else ``$XDG_CACHE_HOME/babelseg/embeddings`` (default
    ``~/.cache/babelseg/embeddings``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "babelseg" / "embeddings"


def _checksum(texts: Sequence[str], vectors: torch.Tensor) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(list(texts), ensure_ascii=False).encode("utf-8"))
    h.update(vectors.contiguous().numpy().tobytes())
    return h.hexdigest()


class CacheFileError(Exception):
    """A cache file that cannot be trusted (internal: turned into a warning and a rebuild)."""


class EmbeddingCache:
    """Embeddings on disk, one safetensors file per encoder id.

    Args:
        directory: Cache folder (created on first write); default :func:`default_cache_dir`.
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory).expanduser() if directory else default_cache_dir()

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.directory)!r})"

    def path_for(self, encoder_id: str) -> Path:
        """The file holding ``encoder_id``'s embeddings (a readable name plus a short digest,
        so ids that differ only in unsafe characters do not share a file)."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_id).strip("._")[:80] or "encoder"
        digest = hashlib.blake2b(encoder_id.encode("utf-8"), digest_size=4).hexdigest()
        return self.directory / f"{safe}-{digest}.safetensors"

    # ------------------------------------------------------------------ reading
    def _read_file(self, path: Path, encoder_id: str, dim: int) -> tuple[list[str], torch.Tensor]:
        """Read and validate one cache file; CacheFileError says what is wrong."""
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                keys = list(f.keys())
                if keys != [_TENSOR]:
                    raise CacheFileError(f"expected one tensor '{_TENSOR}', found {keys}")
                vectors = f.get_tensor(_TENSOR)
        except CacheFileError:
            raise
        except Exception as e:  # safetensors raises several types for damaged files
            raise CacheFileError(f"cannot be read ({type(e).__name__}: {e})") from e
        if meta.get("format") != FORMAT:
            raise CacheFileError(f"format {meta.get('format')!r} is not {FORMAT!r}")
        if meta.get("encoder_id") != encoder_id:
            raise CacheFileError(f"holds encoder {meta.get('encoder_id')!r}, not {encoder_id!r}")
        try:
            texts = json.loads(meta["texts"])
            stored_dim = int(meta["dim"])
            checksum = meta["checksum"]
        except (KeyError, ValueError, TypeError) as e:
            raise CacheFileError(f"has damaged metadata ({type(e).__name__}: {e})") from e
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise CacheFileError("its text index is not a list of strings")
        if vectors.dtype != torch.float32 or vectors.ndim != 2:
            raise CacheFileError(
                f"tensor is {vectors.dtype}{list(vectors.shape)}, not float32[N, D]"
            )
        if vectors.shape[1] != dim or stored_dim != dim:
            raise CacheFileError(
                f"holds {vectors.shape[1]}-d vectors (metadata: {stored_dim}); "
                f"the encoder gives {dim}"
            )
        if vectors.shape[0] != len(texts):
            raise CacheFileError(f"has {vectors.shape[0]} rows but {len(texts)} texts")
        if len(set(texts)) != len(texts):
            raise CacheFileError("lists a text twice")
        if _checksum(texts, vectors) != checksum:
            raise CacheFileError("checksum mismatch")
        return texts, vectors

    def _load(self, encoder_id: str, dim: int, *, warn: bool) -> dict[str, torch.Tensor]:
        path = self.path_for(encoder_id)
        if not path.is_file():
            return {}
        try:
            texts, vectors = self._read_file(path, encoder_id, dim)
        except CacheFileError as e:
            if warn:
                warnings.warn(
                    f"Embedding cache file {path} {e}; ignoring it, it will be rebuilt.",
                    stacklevel=3,
                )
            return {}
        return {t: vectors[i] for i, t in enumerate(texts)}

    def lookup(self, encoder_id: str, texts: Sequence[str], *, dim: int) -> dict[str, torch.Tensor]:
        """Cached vectors of those ``texts`` that are in the cache.

        Args:
            encoder_id: The encoder's ``id``.
            texts: Texts wanted.
            dim: The encoder's dimension D (a file with another D is treated as corrupt).
        Returns:
            ``{text: float32[D]}`` for the texts found; a damaged file warns and counts as empty.
        """
        stored = self._load(encoder_id, dim, warn=True)
        return {t: stored[t] for t in texts if t in stored}

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        if fcntl is None:  # pragma: no cover
            yield
            return
        with open(path.with_name(path.name + ".lock"), "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def store(self, encoder_id: str, texts: Sequence[str], vectors: torch.Tensor) -> None:
        """Add embeddings to the cache (existing entries are kept; a damaged file is replaced).

        Args:
            encoder_id: The encoder's ``id``.
            texts: N distinct texts.
            vectors: ``float32[N, D]`` their embeddings.
        """
        texts = list(texts)
        assert vectors.ndim == 2 and vectors.shape[0] == len(texts), (vectors.shape, len(texts))
        assert len(set(texts)) == len(texts), "store() takes distinct texts"
        if not texts:
            return
        dim = int(vectors.shape[1])
        path = self.path_for(encoder_id)
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._locked(path):
            merged = self._load(encoder_id, dim, warn=False)  # re-read: others may have written
            for t, v in zip(texts, vectors.detach().to("cpu", torch.float32)):
                merged[t] = v
            all_texts = list(merged)
            matrix = torch.stack([merged[t] for t in all_texts]).contiguous()
            meta = {
                "format": FORMAT,
                "encoder_id": encoder_id,
                "dim": str(dim),
                "texts": json.dumps(all_texts, ensure_ascii=False),
                "checksum": _checksum(all_texts, matrix),
            }
            self._write_atomic(path, matrix, meta)

    def _write_atomic(self, path: Path, matrix: torch.Tensor, meta: dict[str, str]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=path.name + ".", suffix=".tmp")
        os.close(fd)
        try:
            save_file({_TENSOR: matrix}, tmp, metadata=meta)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache may be shared
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):  # make the rename durable (POSIX)
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def clear(self, encoder_id: str | None = None) -> int:
        """Delete the cache file of one encoder id, or of all ids; returns how many were removed."""
        if encoder_id is not None:
            paths = [self.path_for(encoder_id)]
        else:
            paths = sorted(self.directory.glob("*.safetensors")) if self.directory.is_dir() else []
        removed = 0
        for p in paths:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed += 1
        return removed


class CachedTextEncoder:
    """A text encoder that looks texts up in an :class:`EmbeddingCache` first.

    Only texts missing from the cache reach the wrapped encoder; their embeddings are stored.
    Satisfies the ``TextEncoder`` protocol with the wrapped encoder's ``id`` and ``dim``.

    Args:
        encoder: The encoder to wrap.
        cache: Where embeddings live.

    Attributes:
        encoder: The wrapped encoder.
        cache: The cache.
        encoded: How many texts were sent to the wrapped encoder so far (cache misses).
    """

    def __init__(self, encoder: TextEncoder, cache: EmbeddingCache) -> None:
        self.encoder = encoder
        self.cache = cache
        self.encoded = 0

    @property
    def id(self) -> str:
        return self.encoder.id

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def __repr__(self) -> str:
        return f"CachedTextEncoder({self.encoder!r}, {self.cache!r})"

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Encode texts, reusing cached embeddings.

        Args:
            texts: K strings (repeats allowed).
        Returns:
            ``float32[K, D]`` unit-norm rows in request order (``[0, D]`` for no texts).
        """
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ValueError(f"Text {i} is {type(t).__name__}, not a string: {t!r}.")
        if not texts:
            return torch.zeros((0, self.dim), dtype=torch.float32)
        unique = list(dict.fromkeys(texts))
        found = self.cache.lookup(self.id, unique, dim=self.dim)
        missing = [t for t in unique if t not in found]
        if missing:
            fresh = self.encoder.encode(missing).detach().to("cpu", torch.float32)
            if tuple(fresh.shape) != (len(missing), self.dim):
                raise ValueError(
                    f"Text encoder '{self.id}' returned shape {tuple(fresh.shape)} for "
                    f"{len(missing)} texts; expected ({len(missing)}, {self.dim})."
                )
            self.encoded += len(missing)
            try:
                self.cache.store(self.id, missing, fresh)
            except OSError as e:
                warnings.warn(
                    f"Could not write the embedding cache in {self.cache.directory} ({e}); "
                    "continuing without caching. Set BABELSEG_CACHE to a writable folder.",
                    stacklevel=2,
                )
            found.update(zip(missing, fresh))
        return torch.stack([found[t] for t in texts]).contiguous()
