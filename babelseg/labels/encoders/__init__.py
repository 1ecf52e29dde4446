"""Text encoders: label texts in, unit-norm vectors out (see ``base.TextEncoder``).

``minilm`` (default, offline all-MiniLM-L6-v2), ``clip`` (transformers CLIP text tower) and
``hash`` (character n-gram hashing, for tests). Build one by name with ``build_text_encoder``.
"""

from babelseg.labels.encoders.base import TextEncoder
from babelseg.labels.encoders.clip import ClipTextEncoder
from babelseg.labels.encoders.factory import DEFAULT_ENCODER, ENCODERS, build_text_encoder
from babelseg.labels.encoders.hash import HashTextEncoder
from babelseg.labels.encoders.minilm import MiniLMTextEncoder

__all__ = [
    "DEFAULT_ENCODER",
    "ENCODERS",
    "ClipTextEncoder",
    "HashTextEncoder",
    "MiniLMTextEncoder",
    "TextEncoder",
    "build_text_encoder",
]
