"""Labels as language: label spaces, their texts, text encoders and the embedding cache.

Light names are imported here; the cache (torch, safetensors) loads on first access, so
``import babelseg.labels.space`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from babelseg.labels.space import IGNORE_INDEX, ClassDef, LabelSpace
from babelseg.labels.texts import (
    DEFAULT_TEMPLATE,
    TEXT_MODES,
    class_text,
    encode_label_space,
    label_texts,
)

_LAZY = {
    "EmbeddingCache": "babelseg.labels.cache",
    "CachedTextEncoder": "babelseg.labels.cache",
    "default_cache_dir": "babelseg.labels.cache",
    "build_text_encoder": "babelseg.labels.encoders.factory",
    "ENCODERS": "babelseg.labels.encoders.factory",
}

__all__ = [
    "DEFAULT_TEMPLATE",
    "IGNORE_INDEX",
    "TEXT_MODES",
    "ClassDef",
    "LabelSpace",
    "class_text",
    "encode_label_space",
    "label_texts",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'babelseg.labels' has no attribute '{name}'")
