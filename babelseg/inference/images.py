"""Turn what a user passes to ``predict`` into RGB arrays, with errors that say what is accepted.

Accepted, alone or in a list/tuple (a batch):

- a path (``str`` or ``pathlib.Path``) to an image file (EXIF orientation applied);
- a ``PIL.Image.Image`` (any mode; converted to RGB, alpha dropped);
- a numpy array ``uint8[H, W, 3]`` (RGB), ``uint8[H, W]`` (grey) or ``uint8[B, H, W, 3]``;
- a torch tensor ``[3, H, W]`` or ``[B, 3, H, W]`` (channels first, as torchvision has them),
  ``uint8`` 0..255 or floating point 0..1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from babelseg.data.image_io import read_rgb

ACCEPTED = (
    "a path to an image file, a PIL.Image, a numpy uint8 array [H, W, 3] (RGB) or [H, W] (grey), "
    "a torch tensor [3, H, W] (uint8 0..255 or float 0..1), or a list of these"
)


@dataclass
class InputImage:
    """One image to predict.

    Attributes:
        pixels: ``uint8[H, W, 3]`` RGB.
        name: Where it came from (the path, or ``"image 3"``), for messages and file names.
    """

    pixels: np.ndarray
    name: str


def _from_numpy(arr: np.ndarray, name: str) -> list[np.ndarray]:
    if arr.dtype != np.uint8:
        raise ValueError(
            f"{name}: a numpy image must be uint8 (0..255), got {arr.dtype}; convert it with "
            "(x * 255).round().astype(np.uint8) for 0..1 floats. Accepted: " + ACCEPTED + "."
        )
    if arr.ndim == 2:
        return [np.repeat(arr[..., None], 3, axis=2)]
    if arr.ndim == 3 and arr.shape[2] == 3:
        return [arr]
    if arr.ndim == 4 and arr.shape[3] == 3:
        return list(arr)
    raise ValueError(
        f"{name}: a numpy image must have shape [H, W, 3] (RGB), [H, W] (grey) or [B, H, W, 3], "
        f"got {list(arr.shape)}. Accepted: {ACCEPTED}."
    )


def _from_tensor(x: torch.Tensor, name: str) -> list[np.ndarray]:
    if x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(
            f"{name}: a tensor image must be channels-first [3, H, W] or [B, 3, H, W], got "
            f"{list(x.shape)}. Accepted: {ACCEPTED}."
        )
    x = x.detach().cpu()
    if x.dtype == torch.uint8:
        pixels = x
    elif x.is_floating_point():
        if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
            raise ValueError(
                f"{name}: a float tensor image must hold values in 0..1, got "
                f"{float(x.min()):.3g}..{float(x.max()):.3g}; pass uint8 0..255 or divide by 255."
            )
        pixels = (x * 255.0).round().to(torch.uint8)
    else:
        raise ValueError(f"{name}: a tensor image must be uint8 or float, got {x.dtype}.")
    pixels = pixels.movedim(-3, -1).contiguous().cpu().numpy()
    return list(pixels) if pixels.ndim == 4 else [pixels]


def _one(item: Any, name: str) -> list[np.ndarray]:
    if isinstance(item, (str, Path)):
        if not Path(item).is_file():
            raise FileNotFoundError(f"Image file not found: {item}. Accepted: {ACCEPTED}.")
        return [read_rgb(item)]
    if isinstance(item, Image.Image):
        rgb = item if item.mode == "RGB" else item.convert("RGB")
        return [np.asarray(rgb, dtype=np.uint8)]
    if isinstance(item, np.ndarray):
        return _from_numpy(item, name)
    if isinstance(item, torch.Tensor):
        return _from_tensor(item, name)
    raise TypeError(f"{name}: cannot predict a {type(item).__name__}. Accepted: {ACCEPTED}.")


def as_images(images: Any) -> tuple[list[InputImage], bool]:
    """The RGB images in ``images`` and whether a batch was given.

    Args:
        images: One image or a list/tuple of images (see the module docstring); a 4-D array or
            tensor counts as a batch.
    Returns:
        ``(images, is_batch)``: ``is_batch`` is False for a single image, so the caller can
        answer with one result rather than a list.
    Raises:
        TypeError: an object of a type that is not an image.
        ValueError: an array of the wrong shape or dtype, an empty list, or an unreadable file.
        FileNotFoundError: a path that does not exist.
    """
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError(f"Got an empty list of images. Accepted: {ACCEPTED}.")
        items: Sequence[Any] = images
        is_batch = True
    else:
        items = [images]
        is_batch = getattr(images, "ndim", 0) == 4
    out: list[InputImage] = []
    for i, item in enumerate(items):
        name = str(item) if isinstance(item, (str, Path)) else f"image {i}"
        found = _one(item, name)
        for k, pixels in enumerate(found):
            label = name if len(found) == 1 else f"{name}[{k}]"
            if pixels.shape[0] < 1 or pixels.shape[1] < 1:
                raise ValueError(f"{label}: the image is empty ({list(pixels.shape)}).")
            out.append(InputImage(pixels=np.ascontiguousarray(pixels), name=label))
    return out, is_batch
