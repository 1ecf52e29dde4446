"""What an upload may be, and turning its bytes into pixels without trusting them.

An upload is refused before any pixel is decoded when its body is larger than
``max_upload_bytes`` (413) or its header declares more than ``max_pixels`` pixels (400): a
decompression bomb (a few kB of PNG that inflate to gigabytes) is stopped by its header.
Pillow's own bomb guard (``DecompressionBombError``) is turned into the same 400.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
MAX_CONCURRENCY = 8


@dataclass(frozen=True)
class ServeLimits:
    """Bounds on what one request may cost.

    Attributes:
        max_upload_bytes: Largest request body (image plus form fields), in bytes.
        max_pixels: Largest image, in pixels (width x height from the header).
        max_labels: Largest typed vocabulary.
        max_score_bytes: Largest ``float32`` score volume ``K x H/4 x W/4`` one image may need.
        slide_above_pixels: Images larger than this are predicted in sliding windows.
        concurrency: Predictions computed at once (at most 8); further requests wait their turn.
        queue: Requests allowed to wait; beyond that the server answers 503 (retry later).
        cache_bytes: Memory for recent results (hover and heat maps read them).
    """

    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 16 * 1024 * 1024
    max_labels: int = 1000
    max_score_bytes: int = 512 * 1024 * 1024
    slide_above_pixels: int = 1024 * 1024
    concurrency: int = 1
    queue: int = 16
    cache_bytes: int = 512 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in (
            "max_upload_bytes",
            "max_pixels",
            "max_labels",
            "max_score_bytes",
            "slide_above_pixels",
            "concurrency",
            "cache_bytes",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.concurrency > MAX_CONCURRENCY:
            raise ValueError(
                f"concurrency must be at most {MAX_CONCURRENCY} (the model keeps the text "
                f"embeddings of 16 vocabularies), got {self.concurrency}."
            )
        if self.queue < 0:
            raise ValueError(f"queue must be 0 or more, got {self.queue}.")


class UploadRejected(ValueError):
    """A request the server refuses; ``status`` is the HTTP status to answer with.

    Args:
        status: 400 (bad input), 404 (unknown result), 413 (too large) or 503 (busy).
        message: What was wrong and what to do, shown to the user as is.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _to_rgb(im: Image.Image) -> np.ndarray:
    """``uint8[H, W, 3]``; 16-bit grey is scaled to 8 bits (not clipped)."""
    if im.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(im).astype(np.float64)
        top = 65535.0 if values.max(initial=0) > 255 else 255.0
        grey = np.round(values * (255.0 / top)).clip(0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def decode_upload(data: bytes, *, name: str, limits: ServeLimits) -> np.ndarray:
    """Decode an uploaded image, checking its size before its pixels.

    Args:
        data: The file's bytes.
        name: The file name the client gave (for messages).
        limits: The server's limits.
    Returns:
        ``uint8[H, W, 3]`` RGB pixels, EXIF orientation applied.
    Raises:
        UploadRejected: 413 for too many bytes; 400 for an empty or unreadable file, or one
            whose header declares more than ``limits.max_pixels`` pixels.
    """
    if len(data) > limits.max_upload_bytes:
        raise UploadRejected(
            413,
            f"{name} is {len(data)} bytes; this server takes images up to "
            f"{limits.max_upload_bytes} bytes. Send a smaller or more compressed image.",
        )
    if not data:
        raise UploadRejected(400, f"{name} is empty; send an image file (PNG, JPEG, ...).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            width, height = im.size
            if width * height > limits.max_pixels:
                raise UploadRejected(
                    400,
                    f"{name} declares {width}x{height} = {width * height} pixels; this server "
                    f"takes images up to {limits.max_pixels} pixels (a decompression bomb, or "
                    "too large). Downscale the image and send it again.",
                )
            im.load()
            im = ImageOps.exif_transpose(im)
            return _to_rgb(im)
    except UploadRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UploadRejected(
            400, f"{name} was refused as a decompression bomb ({e}). Send a smaller image."
        ) from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise UploadRejected(
            400, f"{name} is not a readable image ({e}). Send a PNG, JPEG, WebP, BMP or TIFF."
        ) from e
