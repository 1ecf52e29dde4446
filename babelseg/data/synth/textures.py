"""Texture families: vectorised pattern fields in [-1, 1] over a region's bounding box.

``frequency`` counts cycles over the box height, so a texture keeps its look when an object is
drawn at another size. Each function takes ``(height, width, frequency, angle, rng)`` and
returns ``float32[height, width]``. Plug-in point: the plain dict ``TEXTURES``.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np


def _coords(h: int, w: int, frequency: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotated coordinates in cycles, ``float32[h, w]``: ``u`` across the stripes, ``v`` along."""
    scale = frequency / max(h, 1)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a = np.deg2rad(angle)
    u = (x * np.cos(a) + y * np.sin(a)) * scale
    v = (-x * np.sin(a) + y * np.cos(a)) * scale
    return u, v


def value_noise(h: int, w: int, frequency: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth noise: a random grid of ``~frequency`` cells per height, bicubically upsampled."""
    gh = max(2, int(np.ceil(frequency)) + 2)
    gw = max(2, int(np.ceil(frequency * w / max(h, 1))) + 2)
    grid = rng.uniform(-1.0, 1.0, size=(gh, gw)).astype(np.float32)
    return np.clip(cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC), -1.0, 1.0)


def flat(h: int, w: int, frequency: float, angle: float, rng: np.random.Generator) -> np.ndarray:
    return np.zeros((h, w), np.float32)


def noise(h: int, w: int, frequency: float, angle: float, rng: np.random.Generator) -> np.ndarray:
    """Two octaves of value noise (asphalt, foliage, fabric)."""
    f = max(frequency, 1.0)
    out = value_noise(h, w, f, rng) * 0.65 + value_noise(h, w, 2.5 * f, rng) * 0.35
    return np.clip(out * 1.4, -1.0, 1.0)


def stripes(h: int, w: int, frequency: float, angle: float, rng: np.random.Generator) -> np.ndarray:
    """Soft square wave (zebra crossings, bus windows)."""
    u, _ = _coords(h, w, frequency, angle)
    phase = rng.uniform(0, 2 * np.pi)
    return np.clip(3.0 * np.sin(2 * np.pi * u + phase), -1.0, 1.0)


def waves(h: int, w: int, frequency: float, angle: float, rng: np.random.Generator) -> np.ndarray:
    """Stripes whose position wanders with smooth noise (wood grain, water, grass blades)."""
    u, _ = _coords(h, w, frequency, angle)
    warp = value_noise(h, w, 3.0, rng) * 0.6
    return np.sin(2 * np.pi * (u + warp) + rng.uniform(0, 2 * np.pi)).astype(np.float32)


def grid(h: int, w: int, frequency: float, angle: float, rng: np.random.Generator) -> np.ndarray:
    """Tiles: +1 on the grout lines, -1 inside the tiles (pavement, facades, ceilings)."""
    u, v = _coords(h, w, frequency, angle)
    u = u + rng.uniform(0, 1)
    v = v + rng.uniform(0, 1)
    line = 0.14
    on_line = ((u - np.floor(u)) < line) | ((v - np.floor(v)) < line)
    return np.where(on_line, 1.0, -1.0).astype(np.float32)


def dots(h: int, w: int, frequency: float, angle: float, rng: np.random.Generator) -> np.ndarray:
    """Staggered dots: +1 inside a dot, -1 around (patterned rugs, gravel)."""
    u, v = _coords(h, w, frequency, angle)
    v = v + rng.uniform(0, 1)
    u = u + 0.5 * (np.floor(v) % 2) + rng.uniform(0, 1)
    du = u - np.floor(u) - 0.5
    dv = v - np.floor(v) - 0.5
    return np.where(du * du + dv * dv < 0.09, 1.0, -1.0).astype(np.float32)


def gradient(
    h: int, w: int, frequency: float, angle: float, rng: np.random.Generator
) -> np.ndarray:
    """Linear ramp from -1 to +1 along ``angle + 90`` degrees (0: top to bottom)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a = np.deg2rad(angle)
    t = -x * np.sin(a) + y * np.cos(a)
    lo, hi = float(t.min()), float(t.max())
    return ((t - lo) / max(hi - lo, 1e-6) * 2.0 - 1.0).astype(np.float32)


TextureFn = Callable[[int, int, float, float, np.random.Generator], np.ndarray]

TEXTURES: dict[str, TextureFn] = {
    "flat": flat,
    "noise": noise,
    "stripes": stripes,
    "waves": waves,
    "grid": grid,
    "dots": dots,
    "gradient": gradient,
}
"""Texture families by name."""
