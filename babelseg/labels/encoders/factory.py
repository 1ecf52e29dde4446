"""Build a text encoder by name (one plain dict, no registration by import side effects)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from babelseg.labels.encoders.base import TextEncoder
from babelseg.labels.encoders.clip import ClipTextEncoder
from babelseg.labels.encoders.hash import HashTextEncoder
from babelseg.labels.encoders.minilm import MiniLMTextEncoder

ENCODERS: dict[str, Callable[..., TextEncoder]] = {
    "minilm": MiniLMTextEncoder,
    "clip": ClipTextEncoder,
    "hash": HashTextEncoder,
}
"""Text encoders by name; ``minilm`` is the default."""

DEFAULT_ENCODER = "minilm"


def build_text_encoder(name: str, **kwargs: Any) -> TextEncoder:
    """Build the text encoder called ``name``.

    Args:
        name: A key of ``ENCODERS``.
        **kwargs: Constructor arguments (e.g. ``name_or_path`` for ``clip``, ``dim`` for ``hash``).
    Returns:
        The encoder.
    Raises:
        ValueError: unknown name, or arguments the encoder does not take.
    """
    if name not in ENCODERS:
        raise ValueError(f"Unknown text encoder '{name}'; valid: {', '.join(sorted(ENCODERS))}.")
    factory = ENCODERS[name]
    signature = inspect.signature(factory)
    try:
        signature.bind(**kwargs)
    except TypeError as e:
        raise ValueError(
            f"Text encoder '{name}' cannot be built with {sorted(kwargs)}: {e}. "
            f"It takes {list(signature.parameters)}."
        ) from e
    return factory(**kwargs)
