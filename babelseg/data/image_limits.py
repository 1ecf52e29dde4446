"""The largest image (in pixels) babelseg decodes: a guard against decompression bombs.

A PNG or JPEG of a few kilobytes can declare 50,000 x 50,000 pixels and take gigabytes once
decoded. Every image babelseg reads is opened through :mod:`babelseg.data.image_io`, which
checks the size in the file's header against this limit *before* decoding and raises a
``ValueError`` naming the file and the setting that raises the limit (``data.max_image_pixels``
in a run config, ``--max-pixels`` for ``babelseg predict``).

The limit is process-wide, like Pillow's own ``Image.MAX_IMAGE_PIXELS`` which it replaces (the
default is Pillow's error threshold, so nothing Pillow read before is refused now). Data-loader
worker processes get it from :class:`babelseg.data.workers.WorkerInit`.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

DEFAULT_MAX_IMAGE_PIXELS = 2 * 89_478_485
"""Pillow's decompression-bomb error threshold (about 13,400 x 13,400 pixels)."""

_limit = [DEFAULT_MAX_IMAGE_PIXELS]


def max_image_pixels() -> int:
    """The current limit (pixels = width x height)."""
    return _limit[0]


def set_max_image_pixels(pixels: int) -> None:
    """Set the limit for this process (and Pillow's, so that Pillow never refuses first).

    Raises:
        ValueError: ``pixels`` < 1.
    """
    pixels = int(pixels)
    if pixels < 1:
        raise ValueError(f"The image pixel limit must be >= 1, got {pixels}.")
    _limit[0] = pixels
    # Pillow raises above 2x its limit and warns above it; ours is checked first (see image_io)
    Image.MAX_IMAGE_PIXELS = pixels


def check_image_pixels(path: str | Path, width: int, height: int) -> None:
    """Refuse an image whose header declares more pixels than the limit.

    Raises:
        ValueError: naming the file, its size, the limit and the settings that raise it.
    """
    limit = max_image_pixels()
    if int(width) * int(height) > limit:
        raise ValueError(
            f"{path} declares {width} x {height} = {int(width) * int(height):,} pixels, more than "
            f"the limit of {limit:,} (a decompression bomb, or a very large image). If the file is "
            "genuine, raise the limit (data.max_image_pixels=N in a run config, --max-pixels N "
            "for `babelseg predict`), or downscale it; otherwise remove it."
        )
