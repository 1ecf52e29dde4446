"""Output images written atomically: a killed ``predict`` never leaves a partial file under its
final name (a 0-byte PNG that later looks like a finished prediction)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from PIL import Image


def save_image_atomic(image: Image.Image, path: str | Path, *, format: str | None = None) -> Path:
    """Save ``image`` to a temporary file next to ``path``, then rename it over ``path``.

    Args:
        image: The image to write.
        path: Destination (parent folders are created).
        format: Pillow format name; None takes it from the extension of ``path``.
    Returns:
        ``path``.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fmt = format or Image.registered_extensions().get(dest.suffix.lower())
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, format=fmt)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest
