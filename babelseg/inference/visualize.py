"""Coloured overlays of label maps with a legend of the classes present.

The image is blended with the class colours (ignore pixels stay as they are), class boundaries
are drawn as thin lines, and a panel to the right lists the classes present, largest first, with
a colour swatch, the class name and the share of image pixels. Text size follows the image
height, so the legend stays readable on tiny and on large images; long lists wrap into columns.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from babelseg.inference.atomic_files import save_image_atomic
from babelseg.labels.space import IGNORE_INDEX

BOUNDARY_COLOR = (255, 255, 255)
PANEL_COLOR = (255, 255, 255)
TEXT_COLOR = (25, 25, 25)
SWATCH_OUTLINE = (90, 90, 90)
MAX_NAME_CHARS = 40
MIN_ROWS = 10
"""Fewest legend rows per column before wrapping (the panel may then be taller than the image)."""


@dataclass(frozen=True)
class LegendEntry:
    """One legend line: class index, name and share of all image pixels (0-100)."""

    index: int
    name: str
    percent: float


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


@functools.lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVuSans from matplotlib's font folder when present, else PIL's default font."""
    try:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    except (ImportError, OSError):
        pass
    return ImageFont.load_default(size=size)


def legend_entries(
    label_map: Any, *, names: Sequence[str], ignore_index: int = IGNORE_INDEX
) -> list[LegendEntry]:
    """The classes present in ``label_map``, largest share first (ties by index).

    Args:
        label_map: ``int[H, W]`` class indices, ``ignore_index`` where unlabelled.
        names: Class names, one per class index.
        ignore_index: Value of unlabelled pixels (never listed).

    Returns:
        One :class:`LegendEntry` per class present; percentages are of all ``H * W`` pixels.
    """
    lab = _to_numpy(label_map).astype(np.int64, copy=False)
    valid = lab[lab != ignore_index]
    counts = np.bincount(valid.ravel(), minlength=len(names)) if valid.size else np.zeros(0)
    present = np.flatnonzero(counts)
    order = sorted(present.tolist(), key=lambda i: (-int(counts[i]), i))
    total = max(lab.size, 1)
    return [LegendEntry(i, str(names[i]), 100.0 * float(counts[i]) / total) for i in order]


def _short(name: str) -> str:
    name = " ".join(name.split())
    return name if len(name) <= MAX_NAME_CHARS else name[: MAX_NAME_CHARS - 1] + "\u2026"


def _percent(p: float) -> str:
    return "<0.1%" if 0 < p < 0.1 else f"{p:.1f}%"


def _draw_legend(entries: list[LegendEntry], *, palette: np.ndarray, height: int) -> np.ndarray:
    """Render the legend panel; its height is at least ``height``.

    Returns:
        ``uint8[H_panel, W_panel, 3]``.
    """
    size = int(np.clip(round(height / 32), 12, 64))
    font = _font(size)
    pad = max(4, size // 2)
    row_h = round(size * 1.5)
    swatch = size
    gap = max(3, size // 2)
    col_gap = size
    n = len(entries)
    rows_fit = max(1, (height - 2 * pad) // row_h)
    rows = rows_fit if rows_fit >= n else max(rows_fit, min(n, MIN_ROWS))
    ncols = max(1, math.ceil(n / rows))
    rows = max(1, math.ceil(n / ncols))
    columns = [entries[c * rows : (c + 1) * rows] for c in range(ncols)]
    widths = []
    for col in columns:
        name_w = max((font.getlength(_short(e.name)) for e in col), default=0)
        pct_w = max((font.getlength(_percent(e.percent)) for e in col), default=0)
        widths.append((math.ceil(name_w), math.ceil(pct_w)))
    panel_w = 2 * pad + sum(swatch + gap + nw + gap + pw for nw, pw in widths)
    panel_w += col_gap * (ncols - 1)
    panel_h = max(height, 2 * pad + rows * row_h)
    panel = Image.new("RGB", (panel_w, panel_h), PANEL_COLOR)
    draw = ImageDraw.Draw(panel)
    x = pad
    for col, (name_w, pct_w) in zip(columns, widths):
        for r, e in enumerate(col):
            top = pad + r * row_h
            cy = top + row_h / 2
            sy = round(cy - swatch / 2)
            draw.rectangle([x - 1, sy - 1, x + swatch, sy + swatch], outline=SWATCH_OUTLINE)
            color = tuple(int(c) for c in palette[e.index])
            draw.rectangle([x, sy, x + swatch - 1, sy + swatch - 1], fill=color)
            tx = x + swatch + gap
            draw.text((tx, cy), _short(e.name), fill=TEXT_COLOR, font=font, anchor="lm")
            draw.text(
                (tx + name_w + gap + pct_w, cy),
                _percent(e.percent),
                fill=TEXT_COLOR,
                font=font,
                anchor="rm",
            )
        x += swatch + gap + name_w + gap + pct_w + col_gap
    return np.asarray(panel)


def _boundaries(lab: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``bool[H, W]``: labelled pixels whose right or lower neighbour has another label."""
    edge = np.zeros(lab.shape, dtype=bool)
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    edge[:-1, :] |= lab[:-1, :] != lab[1:, :]
    width = max(1, round(min(lab.shape) / 500))
    if width > 1:
        edge = ndimage.binary_dilation(edge, iterations=width - 1)
    return edge & valid


def overlay(
    image: Any,
    label_map: Any,
    *,
    names: Sequence[str],
    palette: np.ndarray,
    alpha: float = 0.5,
    ignore_index: int = IGNORE_INDEX,
    legend: bool = True,
) -> np.ndarray:
    """Blend class colours over an image and add a legend of the classes present.

    Args:
        image: ``uint8[H, W, 3]`` RGB image (``[H, W]`` grey and ``[H, W, 4]`` RGBA accepted).
        label_map: ``int[H, W]`` class indices, ``ignore_index`` where unlabelled.
        names: Class names, one per palette row.
        palette: ``uint8[K, 3]`` class colours in index order.
        alpha: Weight of the class colour (0 = image only, 1 = colours only).
        ignore_index: Value of unlabelled pixels; they are left unblended and unlisted.
        legend: Add the legend panel to the right.

    Returns:
        ``uint8[H', W', 3]``: the overlay, ``W' = W + legend width`` and ``H' >= H`` (the legend
        may be taller than a tiny image; the space below the image is blank). Without a legend,
        ``[H, W, 3]``.

    Raises:
        ValueError: shapes disagree, ``names`` and ``palette`` differ in length, ``alpha`` is
            outside 0..1, or the map holds a value that is neither a class index nor ignore.
    """
    img = _to_numpy(image)
    lab = _to_numpy(label_map).astype(np.int64, copy=False)
    pal = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"Image must be [H, W, 3] RGB, got shape {img.shape}.")
    img = img[..., :3].astype(np.uint8, copy=False)
    if lab.shape != img.shape[:2]:
        raise ValueError(
            f"Label map shape {lab.shape} differs from image size {img.shape[:2]}; resize the "
            "label map (nearest neighbour) to the image first."
        )
    if len(names) != len(pal):
        raise ValueError(f"Got {len(names)} names but {len(pal)} palette colours; give one each.")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be within 0..1, got {alpha}.")
    valid = lab != ignore_index
    bad = valid & ((lab < 0) | (lab >= len(pal)))
    if bad.any():
        raise ValueError(
            f"Label map holds values {np.unique(lab[bad])[:10].tolist()} outside the "
            f"{len(pal)} classes (0..{len(pal) - 1}) and not the ignore index {ignore_index}."
        )
    out = img.copy()
    colors = pal[lab[valid]].astype(np.float32)
    out[valid] = np.round((1 - alpha) * img[valid] + alpha * colors).astype(np.uint8)
    out[_boundaries(lab, valid)] = BOUNDARY_COLOR
    if not legend:
        return out
    entries = legend_entries(lab, names=names, ignore_index=ignore_index)
    if not entries:
        return out
    panel = _draw_legend(entries, palette=pal, height=out.shape[0])
    h, w = out.shape[:2]
    canvas = np.empty((panel.shape[0], w + panel.shape[1], 3), dtype=np.uint8)
    canvas[:] = PANEL_COLOR
    canvas[:h, :w] = out
    canvas[:, w:] = panel
    return canvas


def save_overlay(path: str | Path, image: Any, label_map: Any, **kwargs: Any) -> Path:
    """Compute :func:`overlay` and save it (format from the file extension; parents created).

    Args:
        path: Destination image file, e.g. ``overlay.png``.
        image: See :func:`overlay`.
        label_map: See :func:`overlay`.
        **kwargs: Keyword arguments of :func:`overlay` (``names``, ``palette``, ...).

    Returns:
        The path written.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return save_image_atomic(Image.fromarray(overlay(image, label_map, **kwargs)), dest)
