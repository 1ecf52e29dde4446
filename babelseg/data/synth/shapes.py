"""Shape families: objects drawn as part maps with OpenCV polygons and ellipses.

A shape function ``fn(height, width, rng, params) -> uint8[height, width]`` returns a local part
map: 0 outside the object, ``BODY`` (1) where the class colour and texture go, other codes for
parts with their own colour (skin, glass, tyres, ...; see ``PART_COLORS``). Related classes share
a family (car, truck and bus are ``vehicle`` styles). Overlay shapes (``OVERLAY_SHAPES``) are
drawn over the whole image from the scene geometry (lane markings, crosswalks) and then clipped
to their host class. Plug-in points: the plain dicts ``SHAPES`` and ``OVERLAY_SHAPES``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

BODY, SKIN, DARK, GLASS, WOOD, METAL, SCREEN, POT = 1, 2, 3, 4, 5, 6, 7, 8
LIGHT_R, LIGHT_Y, LIGHT_G, WHITE, FRAME, SHADE, HELMET = 9, 10, 11, 12, 13, 14, 15

PART_COLORS: dict[int, tuple[tuple[float, float, float], tuple[float, float, float]] | float] = {
    SKIN: ((25, 0.45, 0.75), (8, 0.15, 0.2)),
    DARK: ((220, 0.2, 0.16), (20, 0.1, 0.08)),
    GLASS: ((205, 0.35, 0.32), (10, 0.1, 0.1)),
    WOOD: ((28, 0.6, 0.3), (6, 0.1, 0.08)),
    METAL: ((0, 0.0, 0.6), (0, 0.05, 0.15)),
    SCREEN: ((210, 0.5, 0.8), (30, 0.3, 0.15)),
    POT: ((15, 0.65, 0.55), (6, 0.1, 0.1)),
    LIGHT_R: ((0, 0.9, 0.95), (4, 0.05, 0.05)),
    LIGHT_Y: ((50, 0.9, 0.95), (4, 0.05, 0.05)),
    LIGHT_G: ((130, 0.8, 0.9), (4, 0.05, 0.05)),
    WHITE: ((0, 0.0, 0.95), (0, 0.02, 0.03)),
    FRAME: ((40, 0.05, 0.88), (10, 0.05, 0.08)),
    SHADE: 0.7,
    HELMET: ((0, 0.6, 0.7), (180, 0.3, 0.2)),
}
"""Part code -> (HSV centre, spread), or a float: the body colour times that factor."""

_SHIFT = 4
_ONE = 1 << _SHIFT


class Canvas:
    """A local part map with drawing in fractions of its width (x) and height (y)."""

    def __init__(self, h: int, w: int) -> None:
        self.h, self.w = h, w
        self.a = np.zeros((h, w), np.uint8)

    def _p(self, x: float, y: float) -> tuple[int, int]:
        return int(round(x * (self.w - 1) * _ONE)), int(round(y * (self.h - 1) * _ONE))

    def poly(self, pts: Sequence[tuple[float, float]], code: int) -> None:
        arr = np.array([self._p(x, y) for x, y in pts], np.int32)
        cv2.fillPoly(self.a, [arr], int(code), cv2.LINE_8, _SHIFT)

    def rect(self, x0: float, y0: float, x1: float, y1: float, code: int) -> None:
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], code)

    def ellipse(
        self, cx: float, cy: float, rx: float, ry: float, code: int, ring: float = 0.0
    ) -> None:
        """Ellipse with radii in fractions of width/height; ``ring`` > 0 draws an outline that thick
        (in fractions of the height)."""
        axes = (int(round(rx * (self.w - 1) * _ONE)), int(round(ry * (self.h - 1) * _ONE)))
        thick = -1 if ring <= 0 else max(1, int(round(ring * self.h)))
        cv2.ellipse(self.a, self._p(cx, cy), axes, 0, 0, 360, int(code), thick, cv2.LINE_8, _SHIFT)

    def line(self, x0: float, y0: float, x1: float, y1: float, code: int, width: float) -> None:
        """A line ``width`` thick in fractions of the height (at least one pixel)."""
        thick = max(1, int(round(width * self.h)))
        cv2.line(self.a, self._p(x0, y0), self._p(x1, y1), int(code), thick, cv2.LINE_8, _SHIFT)


ShapeFn = Callable[[int, int, np.random.Generator, dict], np.ndarray]


def box(h: int, w: int, rng: np.random.Generator, params: dict) -> np.ndarray:
    c = Canvas(h, w)
    c.rect(0, 0, 1, 1, BODY)
    return c.a


def ellipse(h: int, w: int, rng: np.random.Generator, params: dict) -> np.ndarray:
    c = Canvas(h, w)
    c.ellipse(0.5, 0.5, 0.5, 0.5, BODY)
    return c.a


def polygon(h: int, w: int, rng: np.random.Generator, params: dict) -> np.ndarray:
    """A random star-convex polygon (rocks, rugs of odd shape)."""
    n = int(params.get("vertices", 7))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radius = rng.uniform(0.75, 1.0, n) * 0.5
    c = Canvas(h, w)
    c.poly([(0.5 + r * np.cos(a), 0.5 + r * np.sin(a)) for a, r in zip(angles, radius)], BODY)
    return c.a


def person(h: int, w: int, rng: np.random.Generator, params: dict) -> np.ndarray:
    """Head, torso with arms (the clothing colour), legs in dark trousers, mid-stride."""
    c = Canvas(h, w)
    stride = rng.uniform(0.0, 0.12)
    c.rect(0.28, 0.5, 0.48, 0.56, DARK)
    c.poly([(0.26, 0.54), (0.48, 0.54), (0.46 - stride, 1.0), (0.24 - stride, 1.0)], DARK)
    c.poly([(0.52, 0.54), (0.74, 0.54), (0.76 + stride, 1.0), (0.54 + stride, 1.0)], DARK)
    c.poly([(0.12, 0.19), (0.88, 0.19), (0.78, 0.56), (0.22, 0.56)], BODY)
    c.line(0.14, 0.22, 0.06 - stride / 2, 0.52, BODY, 0.05)
    c.line(0.86, 0.22, 0.94 + stride / 2, 0.52, BODY, 0.05)
    c.ellipse(0.5, 0.1, 0.2, 0.09, SKIN)
    return c.a


def rider(h: int, w: int, rng: np.random.Generator, params: dict) -> np.ndarray:
    """Seated cyclist leaning forward (facing right), with a helmet; sits on a bicycle."""
    c = Canvas(h, w)
    c.poly([(0.25, 0.55), (0.5, 0.55), (0.78, 0.72), (0.7, 0.82)], DARK)
    c.poly([(0.62, 0.72), (0.76, 0.74), (0.68, 1.0), (0.56, 1.0)], DARK)
    c.poly([(0.22, 0.6), (0.52, 0.6), (0.78, 0.22), (0.5, 0.16)], BODY)
    c.line(0.68, 0.25, 0.96, 0.55, BODY, 0.06)
    c.ellipse(0.72, 0.1, 0.16, 0.09, SKIN)
    c.ellipse(0.7, 0.06, 0.17, 0.06, HELMET)
    return c.a


def bicycle(h: int, w: int, rng: np.random.Generator, params: dict) -> np.ndarray:
    """Two wheels (dark rings) and a diamond frame in the class colour."""
    c = Canvas(h, w)
    r = 0.32
    rx = r * h / max(w, 1)
    rear, front = (rx, 1 - r), (1 - rx, 1 - r)
    c.ellipse(*rear, rx, r, DARK, ring=0.08)
    c.ellipse(*front, rx, r, DARK, ring=0.08)
    bb, seat, head = (0.48, 1 - r), (0.4, 0.28), (0.74, 0.26)
    for a, b in ((rear, bb), (bb, seat), (seat, rear), (seat, head), (head, bb), (head, front)):
        c.line(*a, *b, BODY, 0.07)
    c.line(*head, 0.7, 0.08, METAL, 0.06)
    c.line(0.34, 0.24, 0.46, 0.24, DARK, 0.07)
    return c.a


def vehicle(h: int, w: int, rng: np.random.Generator, params: dict) -> np.ndarray:
    """Road vehicles facing right; ``style``: car (cabin on a body), truck (cargo box and cab),
    bus (tall box with a window band). Wheels are dark, windows glass."""
    c = Canvas(h, w)
    style = params.get("style", "car")
    if style == "car":
        c.poly(
            [(0.0, 0.5), (0.06, 0.42), (0.94, 0.42), (1.0, 0.52), (1.0, 0.84), (0.0, 0.84)], BODY
        )
        c.poly([(0.2, 0.45), (0.32, 0.1), (0.68, 0.1), (0.84, 0.45)], BODY)
        c.poly([(0.27, 0.42), (0.35, 0.16), (0.49, 0.16), (0.49, 0.42)], GLASS)
        c.poly([(0.53, 0.42), (0.53, 0.16), (0.66, 0.16), (0.77, 0.42)], GLASS)
        c.rect(0.94, 0.5, 1.0, 0.58, WHITE)
        wheels, r = (0.2, 0.8), 0.17
    elif style == "truck":
        c.rect(0.0, 0.02, 0.68, 0.84, BODY)
        c.poly([(0.7, 0.28), (0.88, 0.28), (1.0, 0.5), (1.0, 0.84), (0.7, 0.84)], BODY)
        c.poly([(0.76, 0.33), (0.87, 0.33), (0.96, 0.5), (0.76, 0.5)], GLASS)
        c.rect(0.0, 0.72, 0.68, 0.76, SHADE)
        wheels, r = (0.14, 0.46, 0.84), 0.14
    else:
        c.rect(0.0, 0.04, 1.0, 0.86, BODY)
        c.rect(0.03, 0.14, 0.97, 0.46, GLASS)
        for x in np.arange(0.16, 0.9, 0.14):
            c.rect(x, 0.14, x + 0.025, 0.46, BODY)
        c.rect(0.86, 0.5, 0.94, 0.82, GLASS)
        c.rect(0.0, 0.6, 0.82, 0.64, SHADE)
        wheels, r = (0.16, 0.8), 0.13
    rx = r * h / max(w, 1)
    for x in wheels:
        c.ellipse(x, 1.0 - r, rx, r, DARK)
    return c.a


def tree(h: int, w: int, rng: np.random.Generator, params: dict) -> np.ndarray:
    """A trunk (wood) under a crown of overlapping ellipses (the class colour)."""
    c = Canvas(h, w)
    c.rect(0.44, 0.5, 0.56, 1.0, WOOD)
    j = rng.uniform(-0.05, 0.05, 6)
    c.ellipse(0.5 + j[0], 0.34 + j[1], 0.46, 0.32, BODY)
    c.ellipse(0.3 + j[2], 0.5, 0.28, 0.18 + j[3], BODY)
    c.ellipse(0.7 + j[4], 0.5, 0.28, 0.18 + j[5], BODY)
    return c.a


def pole(h: int, w: int, rng: np.random.Generator, params: dict) -> np.ndarray:
    c = Canvas(h, w)
    c.rect(0, 0, 1, 1, BODY)
    return c.a


def signal(h: int, w: int, rng: np.random.Generator, params: dict) -> np.ndarray:
    """A traffic-light housing (the class colour) with red, yellow and green lamps."""
    c = Canvas(h, w)
    c.rect(0, 0, 1, 1, BODY)
    ry = 0.11
    rx = ry * h / max(w, 1)
    for y, code in ((0.2, LIGHT_R), (0.5, LIGHT_Y), (0.8, LIGHT_G)):
        c.ellipse(0.5, y, rx, ry, code)
    return c.a


def sign(h: int, w: int, rng: np.random.Generator, params: dict) -> np.ndarray:
    """A round, triangular or diamond sign face: class-colour rim, white centre."""
    c = Canvas(h, w)
    kind = rng.integers(3)
    if kind == 0:
        c.ellipse(0.5, 0.5, 0.5, 0.5, BODY)
        c.ellipse(0.5, 0.5, 0.32, 0.32, WHITE)
    elif kind == 1:
        c.poly([(0.5, 0.0), (1.0, 1.0), (0.0, 1.0)], BODY)
        c.poly([(0.5, 0.35), (0.78, 0.86), (0.22, 0.86)], WHITE)
    else:
        c.poly([(0.5, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5)], BODY)
        c.poly([(0.5, 0.25), (0.75, 0.5), (0.5, 0.75), (0.25, 0.5)], WHITE)
    return c.a


def plant(h: int, w: int, rng: np.random.Generator, params: dict) -> np.ndarray:
    """Foliage (the class colour) in a terracotta pot."""
    c = Canvas(h, w)
    c.ellipse(0.5, 0.36, 0.46, 0.32, BODY)
    for _ in range(3):
        c.ellipse(rng.uniform(0.25, 0.75), rng.uniform(0.1, 0.45), 0.16, 0.1, BODY)
    c.poly([(0.26, 0.62), (0.74, 0.62), (0.65, 1.0), (0.35, 1.0)], POT)
    return c.a


def animal(h: int, w: int, rng: np.random.Generator, params: dict) -> np.ndarray:
    """Four-legged animal facing right; ``legs`` (fraction of height) and ``neck`` (0/1)."""
    c = Canvas(h, w)
    legs = float(params.get("legs", 0.35))
    neck = bool(params.get("neck", 0))
    body_bottom = 1.0 - legs
    ry = min(0.22, body_bottom / 2)
    cy = body_bottom - ry * 0.8
    for x in (0.2, 0.3, 0.62, 0.72):
        c.rect(x, cy, x + 0.06, 1.0, BODY)
    c.ellipse(0.46, cy, 0.34, ry, BODY)
    hx, hy = (0.86, 0.14) if neck else (0.84, cy - ry * 0.8)
    if neck:
        c.poly(
            [(0.64, cy - ry * 0.5), (0.76, cy + ry * 0.3), (0.9, hy + 0.06), (0.8, hy - 0.02)], BODY
        )
    c.ellipse(hx, hy, 0.12, 0.1, BODY)
    c.poly([(hx - 0.06, hy - 0.06), (hx - 0.02, hy - 0.16), (hx + 0.02, hy - 0.06)], BODY)
    c.line(0.13, cy - ry * 0.3, 0.03, cy + ry * 0.8, BODY, 0.04)
    return c.a


def chair(h: int, w: int, rng: np.random.Generator, params: dict) -> np.ndarray:
    """Side view: back rest, seat, two legs."""
    c = Canvas(h, w)
    c.rect(0.1, 0.0, 0.3, 0.52, BODY)
    c.rect(0.1, 0.5, 0.95, 0.6, BODY)
    c.rect(0.12, 0.6, 0.22, 1.0, BODY)
    c.rect(0.82, 0.6, 0.92, 1.0, BODY)
    c.rect(0.14, 0.06, 0.26, 0.4, SHADE)
    return c.a


def table(h: int, w: int, rng: np.random.Generator, params: dict) -> np.ndarray:
    """A top slab on four legs (two front, two shorter ones behind)."""
    c = Canvas(h, w)
    c.rect(0.0, 0.0, 1.0, 0.14, BODY)
    c.rect(0.04, 0.14, 0.96, 0.22, SHADE)
    c.rect(0.18, 0.2, 0.23, 0.86, SHADE)
    c.rect(0.77, 0.2, 0.82, 0.86, SHADE)
    c.rect(0.04, 0.14, 0.1, 1.0, BODY)
    c.rect(0.9, 0.14, 0.96, 1.0, BODY)
    return c.a


def sofa(h: int, w: int, rng: np.random.Generator, params: dict) -> np.ndarray:
    """Back, seat cushions, rounded arms, short dark legs."""
    c = Canvas(h, w)
    c.rect(0.06, 0.86, 0.1, 1.0, DARK)
    c.rect(0.9, 0.86, 0.94, 1.0, DARK)
    c.rect(0.05, 0.08, 0.95, 0.6, BODY)
    c.rect(0.0, 0.52, 1.0, 0.88, BODY)
    c.rect(0.12, 0.52, 0.88, 0.56, SHADE)
    c.ellipse(0.07, 0.4, 0.07, 0.12, BODY)
    c.ellipse(0.93, 0.4, 0.07, 0.12, BODY)
    c.rect(0.0, 0.4, 0.14, 0.88, BODY)
    c.rect(0.86, 0.4, 1.0, 0.88, BODY)
    return c.a


def screen(h: int, w: int, rng: np.random.Generator, params: dict) -> np.ndarray:
    """A television: thin frame (the class colour) around a bright screen."""
    c = Canvas(h, w)
    c.rect(0, 0, 1, 1, BODY)
    c.rect(0.05, 0.07, 0.95, 0.93, SCREEN)
    return c.a


def window(h: int, w: int, rng: np.random.Generator, params: dict) -> np.ndarray:
    """Glass (the class colour) in a light frame, sometimes with mullions."""
    c = Canvas(h, w)
    c.rect(0, 0, 1, 1, FRAME)
    c.rect(0.1, 0.08, 0.9, 0.92, BODY)
    if rng.random() < 0.6:
        c.rect(0.47, 0.08, 0.53, 0.92, FRAME)
        c.rect(0.1, 0.47, 0.9, 0.53, FRAME)
    return c.a


def door(h: int, w: int, rng: np.random.Generator, params: dict) -> np.ndarray:
    """A panelled door with a metal knob."""
    c = Canvas(h, w)
    c.rect(0, 0, 1, 1, BODY)
    c.rect(0.15, 0.06, 0.85, 0.42, SHADE)
    c.rect(0.15, 0.5, 0.85, 0.94, SHADE)
    c.ellipse(0.84, 0.5, 0.06, 0.025, METAL)
    return c.a


SHAPES: dict[str, ShapeFn] = {
    "box": box,
    "ellipse": ellipse,
    "polygon": polygon,
    "person": person,
    "rider": rider,
    "bicycle": bicycle,
    "vehicle": vehicle,
    "tree": tree,
    "pole": pole,
    "signal": signal,
    "sign": sign,
    "plant": plant,
    "animal": animal,
    "chair": chair,
    "table": table,
    "sofa": sofa,
    "screen": screen,
    "window": window,
    "door": door,
}
"""Object shape families by name."""


@dataclass(frozen=True)
class Ground:
    """Scene geometry shared by overlay shapes.

    Attributes:
        height, width: Image size. horizon: First row of the ground (the bottom band).
        vx: Vanishing x of the road. road: Half-widths of the road at the horizon and at the
        image bottom, or None when the scene has no perspective class.
    """

    height: int
    width: int
    horizon: float
    vx: float
    road: tuple[float, float] | None = None

    def half_width(self, y: np.ndarray) -> np.ndarray:
        top, bottom = self.road if self.road is not None else (0.05 * self.width, 0.6 * self.width)
        s = np.clip((y - self.horizon) / max(self.height - self.horizon, 1.0), 0.0, 1.0)
        return top + (bottom - top) * s


def lane(g: Ground, rng: np.random.Generator, params: dict) -> np.ndarray:
    """One painted line along the road, dashed or solid, thicker toward the viewer."""
    y, x = np.mgrid[0 : g.height, 0 : g.width].astype(np.float32)
    offset = float(rng.choice([-0.4, 0.0, 0.0, 0.4, -0.85, 0.85]))
    hw = g.half_width(y)
    thick = 0.5 + 0.035 * hw
    mask = (y >= g.horizon) & (np.abs(x - (g.vx + offset * hw)) <= thick / 2)
    if abs(offset) < 0.5 or rng.random() < 0.5:
        s = (y - g.horizon) / max(g.height - g.horizon, 1.0)
        depth = 1.0 / (s + 0.08)
        mask &= ((depth * 0.45 + rng.uniform(0, 1)) % 1.0) < 0.5
    return mask


def zebra(g: Ground, rng: np.random.Generator, params: dict) -> np.ndarray:
    """A crosswalk band across the road (its stripes come from the class texture)."""
    y, x = np.mgrid[0 : g.height, 0 : g.width].astype(np.float32)
    span = g.height - g.horizon
    yc = g.horizon + span * rng.uniform(0.35, 0.85)
    half = 0.5 * span * rng.uniform(0.12, 0.2) * (0.4 + (yc - g.horizon) / max(span, 1.0))
    return (np.abs(y - yc) <= half) & (np.abs(x - g.vx) <= g.half_width(y))


OverlayFn = Callable[[Ground, np.random.Generator, dict], np.ndarray]

OVERLAY_SHAPES: dict[str, OverlayFn] = {"lane": lane, "zebra": zebra}
"""Overlay shapes by name: ``fn(ground, rng, params) -> bool[H, W]`` before clipping to the host."""
