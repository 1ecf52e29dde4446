"""Rendering: colours, textures and light for a scene layout, then a dataset's domain style.

Each region gets a colour drawn from its class's HSV range and a texture of its class's family;
objects get a vertical light falloff and a dark outline, standing things a ground shadow. The
dataset style (cast, saturation, contrast, brightness, blur, sensor noise) comes last.
"""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from babelseg.data.synth.layout import SceneLayout
from babelseg.data.synth.shapes import PART_COLORS
from babelseg.data.synth.textures import TEXTURES
from babelseg.data.synth.views import StyleSpec
from babelseg.data.synth.world import World


def sample_color(
    hsv: tuple[float, float, float], spread: tuple[float, float, float], rng: np.random.Generator
) -> np.ndarray:
    """An RGB colour (``float32[3]`` in 0..1) uniformly within ``hsv +- spread``."""
    h = (hsv[0] + rng.uniform(-spread[0], spread[0])) % 360.0
    s = float(np.clip(hsv[1] + rng.uniform(-spread[1], spread[1]), 0.0, 1.0))
    v = float(np.clip(hsv[2] + rng.uniform(-spread[2], spread[2]), 0.0, 1.0))
    return np.array(colorsys.hsv_to_rgb(h / 360.0, s, v), np.float32)


def _extent(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def render_layout(layout: SceneLayout, world: World, rng: np.random.Generator) -> np.ndarray:
    """Paint a layout.

    Args:
        layout: The composed scene.
        world: The world (class signatures).
        rng: Source of colour and texture randomness.
    Returns:
        ``float32[H, W, 3]`` RGB in 0..1 (before the dataset style).
    """
    H, W = layout.region_map.shape
    img = np.zeros((H, W, 3), np.float32)
    is_object = np.zeros(len(layout.regions) + 1, bool)
    for r in layout.regions:
        if r.area == 0:
            continue
        is_object[r.id] = r.kind == "object"
        c = world.classes[r.cls]
        y0, y1, x0, x1 = r.bbox
        sel = layout.region_map[y0:y1, x0:x1] == r.id
        if r.kind != "object":
            dy0, dy1, dx0, dx1 = _extent(sel)
            y0, y1, x0, x1 = y0 + dy0, y0 + dy1, x0 + dx0, x0 + dx1
            sel = sel[dy0:dy1, dx0:dx1]
        h, w = y1 - y0, x1 - x0
        t = c.texture
        if r.kind == "band" and t.family != "gradient":  # per image height: thin bands do not alias
            tex = TEXTURES[t.family](H, W, t.frequency, t.angle, rng)[y0:y1, x0:x1]
        else:
            tex = TEXTURES[t.family](h, w, t.frequency, t.angle, rng)
        base = sample_color(c.color.hsv, c.color.spread, rng)
        if t.accent is not None:
            accent = sample_color(t.accent, (6.0, 0.05, 0.05), rng)
            mix = (np.clip((tex + 1.0) / 2.0, 0.0, 1.0) * min(t.strength, 1.0))[..., None]
            col = base * (1.0 - mix) + accent * mix
        else:
            col = base[None, None, :] * (1.0 + t.strength * tex)[..., None]
        if r.kind == "object":
            light = 1.1 - 0.25 * np.linspace(0.0, 1.0, h, dtype=np.float32)
            col = col * light[:, None, None]
        parts = layout.part_map[y0:y1, x0:x1]
        block = img[y0:y1, x0:x1]
        body = sel & (parts <= 1)
        block[body] = col[body]
        for code in np.unique(parts[sel]):
            if code <= 1:
                continue
            where = sel & (parts == code)
            spec = PART_COLORS[int(code)]
            if isinstance(spec, float):
                block[where] = col[where] * spec
            else:
                pc = sample_color(spec[0], spec[1], rng)
                block[where] = pc * (1.0 + 0.06 * tex[where])[:, None]
    shade = np.ones((H, W), np.float32)
    for cx, cy, rx, ry in layout.shadows:
        center = (int(round(cx * 16)), int(round(cy * 16)))
        axes = (max(16, int(round(rx * 16))), max(16, int(round(ry * 16))))
        cv2.ellipse(shade, center, axes, 0, 0, 360, 0.6, -1, cv2.LINE_8, 4)
    obj = is_object[layout.region_map]
    img *= np.where(obj, 1.0, shade)[..., None]
    rm = layout.region_map
    edge = np.zeros((H, W), bool)
    dx = rm[:, 1:] != rm[:, :-1]
    dy = rm[1:, :] != rm[:-1, :]
    edge[:, 1:] |= dx & obj[:, 1:]
    edge[:, :-1] |= dx & obj[:, :-1]
    edge[1:, :] |= dy & obj[1:, :]
    edge[:-1, :] |= dy & obj[:-1, :]
    img[edge & obj] *= 0.75
    return np.clip(img, 0.0, 1.0)


def apply_style(img: np.ndarray, style: StyleSpec, rng: np.random.Generator) -> np.ndarray:
    """Apply a dataset's domain style.

    Args:
        img: ``float32[H, W, 3]`` RGB in 0..1.
        style: The dataset style.
        rng: Per-image jitter and sensor noise.
    Returns:
        ``uint8[H, W, 3]`` RGB.
    """
    j = style.jitter
    contrast = style.contrast * (1.0 + rng.uniform(-j, j))
    brightness = style.brightness + rng.uniform(-j, j)
    out = img * np.asarray(style.cast, np.float32)
    grey = out.mean(axis=2, keepdims=True)
    out = grey + style.saturation * (out - grey)
    out = (out - 0.5) * contrast + 0.5 + brightness
    if style.blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), style.blur)
    if style.noise > 0:
        out = out + rng.normal(0.0, style.noise / 255.0, out.shape).astype(np.float32)
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
