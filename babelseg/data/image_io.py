"""Reading images and label PNGs from disk, with errors that name the file and the fix.

Label PNGs come in three single-channel flavours, all read as raw integer values:

* grey 8-bit (``"L"``) and bilevel (``"1"``): the pixel values;
* 16-bit (``"I;16"``, ``"I;16B"``, ``"I"``): the pixel values (0..65535);
* palette (``"P"``): the palette *indices*, never the colours the palette maps them to.

RGB label PNGs whose three channels are equal are read as grey; other RGB label PNGs are
refused by :func:`read_label_png` (colour-coded labels are read by
``babelseg.data.label_encoding`` with ``label_encoding: color``); the COCO
panoptic format, whose RGB colours encode segment ids, is read by :func:`read_panoptic_png`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from babelseg.data.image_limits import check_image_pixels, max_image_pixels

_GREY_MODES = {"L", "1", "I;16", "I;16L", "I;16B", "I;16N", "I", "P"}
_WIDE_GREY_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
_EXIF_ORIENTATION = 0x0112
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees


def _open(path: str | Path) -> Image.Image:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"Image file not found: {p}. Check the split paths (and patterns) in datasets.yaml, "
            "or run `babelseg datasets check` to list every missing file."
        )
    try:
        with warnings.catch_warnings():  # the limit below decides, not Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p)
    except Image.DecompressionBombError as e:
        raise ValueError(
            f"{p} is a decompression bomb or a very large image ({e}). If the file is genuine, "
            "raise the limit (data.max_image_pixels=N in a run config, --max-pixels N for "
            f"`babelseg predict`; now {max_image_pixels():,} pixels); otherwise remove it."
        ) from None
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(
            f"Cannot read {p} as an image ({e}). Re-download or re-export the file, or remove it "
            "from the split."
        ) from e
    try:
        check_image_pixels(p, *im.size)
    except ValueError:
        im.close()
        raise
    return im


def _load(im: Image.Image, path: str | Path) -> None:
    """Decode the pixel data now, turning decoder errors into a ValueError naming the file."""
    try:
        im.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(
            f"{path} is damaged or truncated ({e}). Re-download or re-export the file, or remove "
            "it from the split."
        ) from e


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as RGB, applying its EXIF orientation (as COCO tools do).

    Args:
        path: Image file (any format Pillow reads: JPEG, PNG, ...).
    Returns:
        ``uint8[H, W, 3]`` RGB pixels (grey and palette images are expanded, alpha dropped;
        16-bit grey is scaled from 0..65535 to 0..255, never clipped).
    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable image, declares more pixels than the limit of
            :mod:`babelseg.data.image_limits`, or holds float pixels.
    """
    with _open(path) as im:
        _load(im, path)
        im = ImageOps.exif_transpose(im)
        if im.mode in _WIDE_GREY_MODES:
            grey = _wide_grey_to_uint8(np.asarray(im), path)
            return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
        if im.mode == "F":
            raise ValueError(
                f"{path} holds floating-point pixels (mode 'F'), which have no fixed range to "
                "scale to 8 bits; save it as an 8-bit or 16-bit image."
            )
        if im.mode != "RGB":
            im = im.convert("RGB")
        return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def _wide_grey_to_uint8(values: np.ndarray, path: str | Path) -> np.ndarray:
    """16-bit (or 32-bit integer holding 16-bit) grey pixels scaled to ``uint8`` (0..65535 ->
    0..255, rounded); Pillow's ``convert("RGB")`` would clip them instead."""
    if values.size and (int(values.min()) < 0 or int(values.max()) > 65535):
        raise ValueError(
            f"{path} holds grey values {int(values.min())}..{int(values.max())}, outside the "
            "16-bit range 0..65535; save it as an 8-bit or 16-bit image."
        )
    scaled = (values.astype(np.uint32) * 255 + 32767) // 65535
    return scaled.astype(np.uint8)


def image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of an image from its header only (fast: no pixel decoding).

    EXIF rotations by 90 degrees swap the two, so the result matches :func:`read_rgb`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable image.
    """
    with _open(path) as im:
        w, h = im.size
        try:
            orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
        except Exception:  # a broken EXIF block does not stop the image being read
            orientation = 1
    if orientation in _SWAPPING_ORIENTATIONS:
        h, w = w, h
    return int(h), int(w)


def decoded_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of an image after decoding all of its pixels, as training does, so
    that a truncated or damaged file is found (``babelseg datasets check``).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable image, is damaged or truncated, or is too large.
    """
    size = image_size(path)
    with _open(path) as im:
        _load(im, path)
    return size


def read_label_png(path: str | Path) -> np.ndarray:
    """Read a single-channel label image as raw on-disk values.

    Args:
        path: Label PNG: grey 8-bit, 16-bit, palette mode, or RGB with equal channels.
    Returns:
        ``uint8[H, W]`` (8-bit and palette: palette indices) or ``uint16[H, W]`` (16-bit).
    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unreadable file, an RGB/RGBA label image whose channels differ, or values
            outside 0..65535.
    """
    with _open(path) as im:
        mode = im.mode
        if mode in ("RGB", "RGBA"):
            _load(im, path)
            rgb = np.asarray(im, dtype=np.uint8)[..., :3]
            if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all():
                return np.ascontiguousarray(rgb[..., 0])  # grey values saved as RGB
        if mode not in _GREY_MODES:
            hint = ""
            if mode in ("RGB", "RGBA"):
                hint = (
                    " Its channels differ, so it is colour-coded: set the option "
                    "`label_encoding: color` (colours from the label YAML or card), convert it to "
                    "single-channel ids (grey, 16-bit or palette PNG), or use the coco-panoptic "
                    "format if the colours encode segments."
                )
            raise ValueError(
                f"Label image {path} has mode '{mode}'; semantic labels must be single-channel "
                f"(grey 'L', 16-bit 'I;16' or palette 'P').{hint}"
            )
        _load(im, path)
        if mode == "P":
            # np.asarray of a "P" image gives the palette indices; never convert to RGB.
            arr = np.asarray(im, dtype=np.uint8)
        elif mode == "1":
            arr = np.asarray(im, dtype=np.uint8)
        elif mode == "L":
            arr = np.asarray(im, dtype=np.uint8)
        else:
            arr = np.asarray(im)
            if arr.dtype != np.uint16:
                if arr.size and (arr.min() < 0 or arr.max() > 65535):
                    raise ValueError(
                        f"Label image {path} holds values {int(arr.min())}..{int(arr.max())}, "
                        "outside 0..65535; save labels as 8-bit or 16-bit PNGs."
                    )
                arr = arr.astype(np.uint16)
    assert arr.ndim == 2, arr.shape
    return np.ascontiguousarray(arr)


def read_panoptic_png(path: str | Path) -> np.ndarray:
    """Read a COCO panoptic PNG as segment ids ``R + 256 G + 256^2 B`` (0 is VOID).

    Args:
        path: RGB PNG written by the COCO panoptic tools.
    Returns:
        ``int64[H, W]`` segment ids.
    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unreadable file, or not an RGB image.
    """
    with _open(path) as im:
        if im.mode not in ("RGB", "RGBA"):
            raise ValueError(
                f"Panoptic PNG {path} has mode '{im.mode}'; COCO panoptic PNGs are RGB images "
                "whose colour encodes the segment id (R + 256 G + 256^2 B). Re-export it with "
                "the panopticapi converters."
            )
        _load(im, path)
        rgb = np.asarray(im, dtype=np.uint8)[..., :3].astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
