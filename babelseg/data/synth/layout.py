"""Scene layout: which world class is where, as maps of classes, regions and parts.

A scene is built in painter's order: stuff bands from top to bottom (each with its own edge
style: a jagged skyline, a mountain ridge, a perspective road), overlays clipped to their host
(lane markings on the road), hosted objects (windows on facades), then objects standing on the
ground from far to near, each scaled by its depth. Every drawn thing is a *region* with its own
colour and texture; things become instances in the annotations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from babelseg.data.synth.shapes import OVERLAY_SHAPES, SHAPES, Ground
from babelseg.data.synth.world import ClassSpec, SceneSpec, World


@dataclass
class Region:
    """One drawn element: a stuff band, an overlay or an object.

    Attributes:
        id: Region id in ``SceneLayout.region_map`` (1-based, painter's order).
        cls: World class index.
        kind: ``"band"``, ``"overlay"`` or ``"object"``.
        bbox: ``(y0, y1, x0, x1)`` box of the drawn extent (end exclusive), clipped to the image.
        group: Id of the overlapping group it belongs to (crowds), 0 when alone.
        area: Visible pixels after everything was drawn.
    """

    id: int
    cls: int
    kind: str
    bbox: tuple[int, int, int, int]
    group: int = 0
    area: int = 0


@dataclass
class SceneLayout:
    """The composed scene.

    Attributes:
        scene: Scene type name.
        world_map: ``int16[H, W]`` world class index of every pixel.
        region_map: ``int32[H, W]`` region id of every pixel (every pixel has one).
        part_map: ``uint8[H, W]`` part code (``shapes.BODY`` etc.; 0 for bands and overlays).
        regions: Regions in id order (``regions[i].id == i + 1``).
        ground: The scene geometry (horizon, vanishing point, road).
        shadows: ``(cx, cy, rx, ry)`` ellipses darkening the ground under standing things.
    """

    scene: str
    world_map: np.ndarray
    region_map: np.ndarray
    part_map: np.ndarray
    regions: list[Region]
    ground: Ground
    shadows: list[tuple[float, float, float, float]] = field(default_factory=list)

    def add_region(
        self, cls: int, kind: str, bbox: tuple[int, int, int, int], group: int = 0
    ) -> Region:
        region = Region(id=len(self.regions) + 1, cls=cls, kind=kind, bbox=bbox, group=group)
        self.regions.append(region)
        return region

    def paste(
        self, parts: np.ndarray, y0: int, x0: int, cls: int, kind: str, group: int = 0
    ) -> Region | None:
        """Draw a local part map with its top-left corner at ``(y0, x0)`` (clipped)."""
        H, W = self.world_map.shape
        h, w = parts.shape
        ya, yb, xa, xb = max(y0, 0), min(y0 + h, H), max(x0, 0), min(x0 + w, W)
        if ya >= yb or xa >= xb:
            return None
        sub = parts[ya - y0 : yb - y0, xa - x0 : xb - x0]
        m = sub > 0
        if not m.any():
            return None
        region = self.add_region(cls, kind, (ya, yb, xa, xb), group)
        self.world_map[ya:yb, xa:xb][m] = cls
        self.region_map[ya:yb, xa:xb][m] = region.id
        self.part_map[ya:yb, xa:xb][m] = sub[m]
        return region


@dataclass
class _Placement:
    cls: int
    xc: float
    yb: float
    h: float
    w: float
    group: int = 0


def _edge(edge: str, y0: float, band_h: float, width: int, rng: np.random.Generator) -> np.ndarray:
    """``float32[W]`` top boundary of a band that nominally starts at row ``y0``."""
    x = np.arange(width, dtype=np.float32)
    if edge == "wavy":
        amp = rng.uniform(0.08, 0.2) * max(band_h, 4.0)
        curve = y0 + amp * np.sin(
            2 * np.pi * x / (width * rng.uniform(0.4, 1.0)) + rng.uniform(0, 6.3)
        )
    elif edge == "jagged":
        curve = np.empty(width, np.float32)
        start = 0
        while start < width:
            end = start + max(2, int(width * rng.uniform(0.08, 0.22)))
            curve[start:end] = y0 + band_h * rng.uniform(-0.45, 0.3)
            start = end
    elif edge == "ridged":
        walk = np.cumsum(rng.normal(0, 1, width + 8)).astype(np.float32)
        walk = np.convolve(walk, np.ones(9) / 9, mode="valid")[:width]
        walk = (walk - walk.min()) / max(float(np.ptp(walk)), 1e-6)
        curve = y0 + band_h * (0.3 - 0.8 * walk)
    else:
        curve = y0 + rng.uniform(-0.06, 0.06) * (x - width / 2)
    return curve


def _bands(
    world: World,
    scene: SceneSpec,
    present: list[ClassSpec],
    layout: SceneLayout,
    rng: np.random.Generator,
) -> Ground:
    H, W = layout.world_map.shape
    dropped: set[str] = set()
    for choice in scene.choose:
        k = int(rng.integers(choice.k[0], choice.k[1] + 1))
        keep = set(rng.choice(list(choice.classes), size=k, replace=False).tolist())
        dropped |= set(choice.classes) - keep
    for name, p in scene.optional.items():
        if rng.random() >= p:
            dropped.add(name)
    by_region = {
        r: [c for c in present if c.region == r and c.name not in dropped]
        for r in ("top", "middle", "bottom", "full")
    }
    top = rng.uniform(*scene.bands.get("top", (0.3, 0.3))) * H
    mid = rng.uniform(*scene.bands.get("middle", (0.0, 0.0))) * H
    spans = {"top": (0.0, top), "middle": (top, mid), "bottom": (top + mid, H - top - mid)}
    horizon = top + mid
    stack: list[tuple[ClassSpec, float, float]] = []
    perspective: list[ClassSpec] = []
    for band in ("top", "middle", "bottom"):
        members = by_region[band] or by_region["full"][:1]
        flat = [c for c in members if c.edge != "perspective"] or members[:1]
        perspective += [c for c in members if c not in flat]
        y0, bh = spans[band]
        cuts = np.sort(rng.uniform(0.25, 0.75, len(flat) - 1)) if len(flat) > 1 else np.array([])
        starts = [y0] + [y0 + bh * float(t) for t in cuts]
        share = np.diff(starts + [y0 + bh]) if bh > 0 else np.zeros(len(flat))
        stack += [(c, s, float(b)) for c, s, b in zip(flat, starts, share)]
    yy = np.arange(H, dtype=np.float32)[:, None]
    index = {c.name: i for i, c in enumerate(world.classes)}
    layout.world_map[:] = index[stack[0][0].name]
    for c, y0, bh in stack[1:]:
        curve = _edge(c.edge, y0, bh, W, rng)
        layout.world_map[yy >= curve[None, :]] = index[c.name]
    vx = rng.uniform(0.3, 0.7) * W
    road = None
    if perspective:
        road = (rng.uniform(0.03, 0.1) * W, rng.uniform(0.55, 1.0) * W)
    ground = Ground(height=H, width=W, horizon=float(horizon), vx=float(vx), road=road)
    xx = np.arange(W, dtype=np.float32)[None, :]
    for c in perspective:
        mask = (yy >= horizon) & (np.abs(xx - vx) <= ground.half_width(yy))
        layout.world_map[mask] = index[c.name]
    for c in [s[0] for s in stack] + perspective:
        cls = index[c.name]
        region = layout.add_region(cls, "band", (0, H, 0, W))
        layout.region_map[layout.world_map == cls] = region.id
    return ground


def _hosted(
    c: ClassSpec, cls: int, hosts: list[int], layout: SceneLayout, rng: np.random.Generator
) -> None:
    """Place one object fully on its host classes (a window on a facade, a door on a wall)."""
    host = np.isin(layout.world_map, hosts)
    rows, cols = np.nonzero(host.any(axis=1))[0], np.nonzero(host.any(axis=0))[0]
    if len(rows) < 3 or len(cols) < 3:
        return
    hh = rows[-1] - rows[0] + 1
    for _ in range(12):
        h = max(2, int(round(rng.uniform(*c.size) * hh)))
        w = max(2, int(round(h * rng.uniform(*c.aspect))))
        x0 = int(rng.integers(cols[0], max(cols[0] + 1, cols[-1] - w + 2)))
        if c.align == "bottom":
            column = np.nonzero(host[:, min(x0 + w // 2, host.shape[1] - 1)])[0]
            if len(column) == 0:
                continue
            y0 = int(column[-1]) + 1 - h
        else:
            y0 = int(rng.integers(rows[0], max(rows[0] + 1, rows[-1] - h + 2)))
        if y0 < 0 or y0 + h > host.shape[0] or x0 + w > host.shape[1]:
            continue
        parts = SHAPES[c.shape](h, w, rng, c.shape_params)
        inside = host[y0 : y0 + h, x0 : x0 + w][parts > 0]
        if inside.size and inside.mean() >= 0.9:
            layout.paste(parts, y0, x0, cls, "object")
            return


def _ground_placement(
    c: ClassSpec, cls: int, scene: SceneSpec, g: Ground, rng: np.random.Generator
) -> _Placement:
    d = rng.uniform(*c.depth)
    yb = g.horizon + d * (g.height - g.horizon) * 1.05
    h = rng.uniform(*c.size) * g.height * (scene.far_scale + (1 - scene.far_scale) * d)
    return _Placement(cls, rng.uniform(0.02, 0.98) * g.width, yb, h, h * rng.uniform(*c.aspect))


def _draw_standing(
    p: _Placement, world: World, layout: SceneLayout, rng: np.random.Generator
) -> None:
    c = world.classes[p.cls]
    flip = bool(rng.random() < 0.5)
    yb, xc = p.yb, p.xc
    if c.support is not None:
        s_cls = world.class_index(c.support.cls)
        s = world.classes[s_cls]
        lift = rng.uniform(*c.support.elevation) * p.h
        sh = c.support.size * p.h if c.support.size is not None else lift + 0.15 * p.h
        sw = max(1.0, sh * rng.uniform(*s.aspect))
        sx0 = xc - sw / 2
        parts = SHAPES[s.shape](max(2, int(round(sh))), max(1, int(round(sw))), rng, s.shape_params)
        layout.paste(
            parts[:, ::-1] if flip else parts, int(round(yb - sh)), int(round(sx0)), s_cls, "object"
        )
        own, at = c.shape_params.get("mount", (0.5, 0.5))
        own, at = (1 - own, 1 - at) if flip else (own, at)
        xc = sx0 + at * sw + (0.5 - own) * p.w
        yb = yb - lift
    elif c.is_thing:
        layout.shadows.append((xc, p.yb, 0.6 * p.w, 0.07 * p.h + 1.0))
    h, w = max(2, int(round(p.h))), max(2, int(round(p.w)))
    parts = SHAPES[c.shape](h, w, rng, c.shape_params)
    layout.paste(
        parts[:, ::-1] if flip else parts,
        int(round(yb - h)),
        int(round(xc - w / 2)),
        p.cls,
        "object",
        p.group,
    )


def compose_scene(
    *, world: World, scene_name: str, height: int, width: int, rng: np.random.Generator
) -> SceneLayout:
    """Lay out one scene of the given type.

    Args:
        world: The world.
        scene_name: A key of ``world.scenes``.
        height, width: Image size in pixels.
        rng: Source of all randomness (the layout is a pure function of its state).
    Returns:
        The layout; ``region.area`` is filled in.
    """
    scene = world.scenes[scene_name]
    layout = SceneLayout(
        scene=scene_name,
        world_map=np.zeros((height, width), np.int16),
        region_map=np.zeros((height, width), np.int32),
        part_map=np.zeros((height, width), np.uint8),
        regions=[],
        ground=Ground(height, width, height * 0.6, width * 0.5),
    )
    present = [c for c in world.classes if scene_name in c.scenes]
    layout.ground = ground = _bands(world, scene, present, layout, rng)
    standing: list[_Placement] = []
    groups = 0
    for c in present:
        if c.shape is None:
            continue
        cls = world.class_index(c.name)
        lo, hi = scene.counts.get(c.name, c.count)
        n = int(rng.integers(lo, hi + 1))
        if c.shape in OVERLAY_SHAPES:
            hosts = [world.class_index(h) for h in c.hosts]
            for _ in range(n):
                mask = OVERLAY_SHAPES[c.shape](ground, rng, c.shape_params) & np.isin(
                    layout.world_map, hosts
                )
                if mask.any():
                    ys, xs = np.nonzero(mask)
                    region = layout.add_region(
                        cls,
                        "overlay",
                        (int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1),
                    )
                    layout.world_map[mask] = cls
                    layout.region_map[mask] = region.id
        elif c.hosts:
            hosts = [world.class_index(h) for h in c.hosts]
            for _ in range(n):
                _hosted(c, cls, hosts, layout, rng)
        else:
            standing += [_ground_placement(c, cls, scene, ground, rng) for _ in range(n)]
            if c.group is not None and rng.random() < c.group.prob:
                groups += 1
                lead = _ground_placement(c, cls, scene, ground, rng)
                step = lead.w * rng.uniform(0.4, 0.7) * (1 if rng.random() < 0.5 else -1)
                for k in range(int(rng.integers(c.group.size[0], c.group.size[1] + 1))):
                    dy = rng.normal(0, 0.02) * (ground.height - ground.horizon)
                    standing.append(
                        _Placement(cls, lead.xc + k * step, lead.yb + dy, lead.h, lead.w, groups)
                    )
    for p in sorted(standing, key=lambda p: p.yb):
        _draw_standing(p, world, layout, rng)
    areas = np.bincount(layout.region_map.ravel(), minlength=len(layout.regions) + 1)
    for r in layout.regions:
        r.area = int(areas[r.id])
    return layout
