"""Label PNGs: class-index maps written as the on-disk values of a label space, and read back.

Predictions are written in the dataset's own on-disk encoding (``LabelSpace.value_of``), so the
files can be scored by the dataset's official tools and by ``babelseg score`` alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from babelseg.inference.atomic_files import save_image_atomic
from babelseg.labels.space import IGNORE_INDEX, MAX_DISK_VALUE, LabelSpace


def ignore_value_of(space: LabelSpace) -> int:
    """The on-disk value written for ignore pixels: the space's first ignore value.

    Falls back to 255 when the space declares no ignore value and no class uses 255.

    Raises:
        ValueError: the space has no ignore value and 255 is a class value.
    """
    if space.ignore_values:
        return int(space.ignore_values[0])
    if space.index_of_value(IGNORE_INDEX) is None:
        return IGNORE_INDEX
    raise ValueError(
        f"Label space '{space.name}' declares no ignore value and uses {IGNORE_INDEX} for a class; "
        "add 'ignore_values: [...]' to its YAML so ignore pixels can be written."
    )


def indices_to_values(indices: Any, space: LabelSpace) -> np.ndarray:
    """Map class indices to the on-disk values of ``space``.

    Args:
        indices: ``int[H, W]`` class indices 0..K-1, ``IGNORE_INDEX`` (255) for ignore (numpy or
            torch).
        space: The label space the indices refer to.

    Returns:
        ``int64[H, W]`` on-disk values; ignore pixels get :func:`ignore_value_of`.

    Raises:
        ValueError: an index is neither a class index nor ``IGNORE_INDEX``.

    Note:
        ``IGNORE_INDEX`` means ignore only in spaces of at most 255 classes; in larger ones
        (big prediction vocabularies) index 255 is a class like any other.
    """
    if hasattr(indices, "detach"):
        indices = indices.detach().cpu().numpy()
    idx = np.asarray(indices).astype(np.int64, copy=False)
    k = len(space)
    table = np.array([space.value_of(i) for i in range(k)], dtype=np.int64)
    # index 255 is ignore only where it cannot be a class (spaces of up to 255 classes)
    is_ignore = (idx == IGNORE_INDEX) & (k <= IGNORE_INDEX)
    bad = ~is_ignore & ((idx < 0) | (idx >= k))
    if bad.any():
        values = np.unique(idx[bad])[:10].tolist()
        raise ValueError(
            f"Class indices {values} are outside 0..{k - 1} of label space '{space.name}' "
            f"(and not the ignore index {IGNORE_INDEX})."
        )
    out = table[np.clip(idx, 0, k - 1)]
    if is_ignore.any():
        out[is_ignore] = ignore_value_of(space)
    return out


def write_label_png(path: str | Path, label_map: Any, *, palette: np.ndarray | None = None) -> Path:
    """Write a label map as a lossless PNG.

    8-bit grey (``L``) when every value is below 256, 16-bit grey (``I;16``) otherwise. With a
    palette and values below 256 the PNG is palette-mode (``P``): pixel values stay the label
    values, the palette only colours them for viewers (entries past the palette are black).

    Args:
        path: Destination ``.png`` file (parent folders are created).
        label_map: ``int[H, W]`` values 0..65535 (usually from :func:`indices_to_values`).
        palette: Optional ``uint8[N, 3]`` colours, row ``v`` for value ``v`` (N <= 256); ignored
            for 16-bit maps.

    Returns:
        The path written.

    Raises:
        ValueError: the map is not 2-D, not integer, or has values outside 0..65535.
    """
    if hasattr(label_map, "detach"):
        label_map = label_map.detach().cpu().numpy()
    arr = np.asarray(label_map)
    dest = Path(path)
    if arr.ndim != 2:
        raise ValueError(f"Label map for {dest} must be [H, W], got shape {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.integer) and arr.dtype != bool:
        raise ValueError(f"Label map for {dest} must hold integers, got dtype {arr.dtype}.")
    lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
    if lo < 0 or hi > MAX_DISK_VALUE:
        raise ValueError(
            f"Label map for {dest} has values in {lo}..{hi}; label PNGs hold 0..{MAX_DISK_VALUE}."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    if hi < 256:
        img = Image.fromarray(arr.astype(np.uint8))  # mode L
        if palette is not None:
            pal = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
            if len(pal) > 256:
                raise ValueError(
                    f"Palette for {dest} has {len(pal)} colours; at most 256 fit a PNG."
                )
            full = np.zeros((256, 3), dtype=np.uint8)
            full[: len(pal)] = pal
            img.putpalette(full.ravel().tolist())  # L + putpalette -> mode P, values kept
    else:
        img = Image.fromarray(arr.astype(np.uint16))
    return save_image_atomic(img, dest, format="PNG")


def read_label_values(path: str | Path) -> np.ndarray:
    """Raw values ``int64[H, W]`` of a label PNG (palette indices, never colours)."""
    from babelseg.data.image_io import read_label_png

    return np.asarray(read_label_png(Path(path))).astype(np.int64, copy=False)
