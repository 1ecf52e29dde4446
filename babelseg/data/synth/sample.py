"""One SynthWorld image of one dataset: render it, annotate it, write it in the dataset's format.

Every image is a pure function of ``(seed, dataset, split, index)``: its random generator is
seeded from those four values only, so images can be made in any order, in any process.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from babelseg.data.synth.annotate import Annotation, add_noise, add_void_border, build_segments
from babelseg.data.synth.layout import SceneLayout, compose_scene
from babelseg.data.synth.render import apply_style, render_layout
from babelseg.data.synth.views import DatasetView
from babelseg.data.synth.world import World
from babelseg.data.synth.writers import (
    instance_annotations,
    panoptic_segments,
    save_image,
    save_semantic_png,
)
from babelseg.labels.space import IGNORE_INDEX


@dataclass
class RenderedSample:
    """An image with its ground truth in the world and in the dataset.

    Attributes:
        image: ``uint8[H, W, 3]`` RGB, dataset style applied.
        layout: The scene layout (``layout.world_map``: ``int16[H, W]`` world class per pixel).
        clean: The clean annotation in the dataset's labels.
        annotation: The annotation as written (noisy / with void borders where the view says so).
    """

    image: np.ndarray
    layout: SceneLayout
    clean: Annotation
    annotation: Annotation

    @property
    def world_map(self) -> np.ndarray:
        return self.layout.world_map


def sample_rng(seed: int, dataset: str, split: str, index: int) -> np.random.Generator:
    """The generator of one image, seeded from ``(seed, dataset, split, index)`` only."""
    key = [int(seed), zlib.crc32(dataset.encode()), zlib.crc32(split.encode()), int(index)]
    return np.random.default_rng(key)


def image_size(view: DatasetView, size_factor: float, rng: np.random.Generator) -> tuple[int, int]:
    """``(height, width)`` of one image of ``view`` at a scale (with the view's size jitter)."""
    w, h = view.image_size
    j = view.size_jitter
    if j > 0:
        w, h = w * (1 + rng.uniform(-j, j)), h * (1 + rng.uniform(-j, j))
    return max(16, int(round(h * size_factor))), max(16, int(round(w * size_factor)))


def render_sample(
    world: World, view: DatasetView, *, split: str, index: int, seed: int, scale: str
) -> RenderedSample:
    """Render and annotate image ``index`` of ``split`` of ``view``.

    Raises:
        ValueError: unknown scale.
    """
    if scale not in world.scales:
        raise ValueError(f"Unknown scale '{scale}'; the world defines {sorted(world.scales)}.")
    rng = sample_rng(seed, view.name, split, index)
    height, width = image_size(view, world.scales[scale].size_factor, rng)
    names = list(view.scenes)
    weights = np.array([view.scenes[n] for n in names], np.float64)
    scene = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    layout = compose_scene(world=world, scene_name=scene, height=height, width=width, rng=rng)
    image = apply_style(render_layout(layout, world, rng), view.style, rng)
    clean = build_segments(layout, view, rng)
    ann = clean
    if view.noise is not None and split in view.noise.splits:
        ann = add_noise(ann, view.noise, view, rng)
    if view.format == "semantic-png" and view.encoding["void_border"] > 0:
        ann = add_void_border(ann, view.encoding["void_border"])
    return RenderedSample(image=image, layout=layout, clean=clean, annotation=ann)


def split_paths(view: DatasetView, split: str) -> dict[str, str]:
    """The split's paths relative to the dataset root, as ``datasets.yaml`` declares them."""
    if view.format == "semantic-png":
        return {"images": f"images/{split}", "labels": f"labels/{split}"}
    if view.format == "coco-panoptic":
        return {
            "images": f"images/{split}",
            "json": f"annotations/panoptic_{split}.json",
            "panoptic": f"panoptic/{split}",
        }
    return {"images": f"images/{split}", "json": f"annotations/instances_{split}.json"}


def masks_written(view: DatasetView, split: str) -> bool:
    """Boxes-only datasets keep masks out of the train split (val has them, for scoring)."""
    return not (view.annotation == "boxes" and split == "train")


def write_sample(
    sample: RenderedSample, view: DatasetView, root: Path, split: str, index: int
) -> dict[str, Any]:
    """Write one image and its labels under ``root`` (the dataset folder).

    Returns:
        A JSON-able record: ``image`` (COCO image entry), ``segments_info`` (panoptic) or
        ``annotations`` (instances), and ``labels`` (label indices present, for coverage).
    """
    stem = f"{index:06d}"
    ext = "jpg" if view.image_format == "jpg" else "png"
    paths = split_paths(view, split)
    save_image(
        root / paths["images"] / f"{stem}.{ext}",
        sample.image,
        image_format=view.image_format,
        quality=view.jpeg_quality,
    )
    h, w = sample.image.shape[:2]
    ann = sample.annotation
    record: dict[str, Any] = {
        "image": {"id": index + 1, "file_name": f"{stem}.{ext}", "width": w, "height": h}
    }
    if view.format == "semantic-png":
        semantic = ann.semantic()
        save_semantic_png(root / paths["labels"] / f"{stem}.png", semantic, view)
        present = np.unique(semantic)
        record["labels"] = [int(v) for v in present if v != IGNORE_INDEX]
    elif view.format == "coco-panoptic":
        rgb, infos = panoptic_segments(ann, view)
        save_image(root / paths["panoptic"] / f"{stem}.png", rgb, image_format="png", quality=100)
        record["segments_info"] = infos
        record["labels"] = sorted({s.label for s in ann.segments})
    else:
        record["annotations"] = instance_annotations(
            ann, view, with_masks=masks_written(view, split)
        )
        record["labels"] = sorted({s.label for s in ann.segments if s.is_thing})
    return record
