"""A deterministic text encoder from hashed character n-grams (for fast tests, no weights).

Each text is lower-cased and split into words. Every word contributes its character n-grams with
word-boundary markers (``"<car>"`` gives ``"<ca"``, ``"car"``, ``"ar>"`` for n=3) and one
whole-word feature. Features are hashed with BLAKE2b (stable across processes, unlike Python's
salted ``hash()``) into ``dim`` signed buckets (the "hashing trick"), and the counts are
L2-normalised. Texts that share n-grams therefore get a positive cosine similarity, up to the
rare hash collision.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

_WORD = re.compile(r"\w+", re.UNICODE)


@lru_cache(maxsize=65536)
def _bucket(feature: str, dim: int) -> tuple[int, float]:
    """Bucket index in ``[0, dim)`` and sign (+1/-1) of one feature."""
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return (value >> 1) % dim, 1.0 if value & 1 else -1.0


def text_features(text: str, *, ngram: int) -> list[str]:
    """The hashed features of one text.

    Args:
        text: Any string.
        ngram: Character n-gram length.
    Returns:
        For each word: its boundary-marked character n-grams (prefix ``"g:"``; a word shorter
        than ``ngram`` gives itself with markers) and the whole word (prefix ``"w:"``). A text
        without word characters gives one feature for the whole text, so it still has a vector.
    """
    words = _WORD.findall(text.casefold())
    features: list[str] = []
    for word in words:
        marked = f"<{word}>"
        if len(marked) <= ngram:
            features.append("g:" + marked)
        else:
            features.extend("g:" + marked[i : i + ngram] for i in range(len(marked) - ngram + 1))
        features.append("w:" + word)
    if not features:
        features.append("t:" + text)
    return features


class HashTextEncoder:
    """Signed feature hashing of character n-grams and words (see the module docstring).

    Args:
        dim: Embedding dimension D.
        ngram: Character n-gram length.

    Attributes:
        id: ``"hash-d{dim}-n{ngram}"``, the embedding-cache key.
        dim: D.
    """

    def __init__(self, dim: int = 256, ngram: int = 3) -> None:
        if int(dim) < 1:
            raise ValueError(f"HashTextEncoder dim must be >= 1, got {dim}.")
        if int(ngram) < 1:
            raise ValueError(f"HashTextEncoder ngram must be >= 1, got {ngram}.")
        self.dim = int(dim)
        self.ngram = int(ngram)
        self.id = f"hash-d{self.dim}-n{self.ngram}"

    def __repr__(self) -> str:
        return f"HashTextEncoder(dim={self.dim}, ngram={self.ngram})"

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Encode texts.

        Args:
            texts: K strings.
        Returns:
            ``float32[K, D]`` rows of unit L2 norm (``[0, D]`` for no texts).
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"Text {row} is {type(text).__name__}, not a string: {text!r}.")
            for feature in text_features(text, ngram=self.ngram):
                index, sign = _bucket(feature, self.dim)
                out[row, index] += sign
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        # A row can only be all zero when its signed features cancel exactly; give it one bucket.
        zero = norms[:, 0] == 0
        out[zero, 0] = 1.0
        norms[zero] = 1.0
        return torch.from_numpy((out / norms).astype(np.float32))
