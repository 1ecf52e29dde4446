"""Generate every dataset of a world, in its real format, plus the files that declare them.

Output (``OUT``)::

    OUT/datasets.yaml        declarations ready for training (babelseg.data.declaration schema)
    OUT/relations.json       {"world_classes": [...], "datasets": {name: {"heldout", "labels":
                             {label: [world classes]}, "ignored": [world classes]}}}
    OUT/world.yaml           the resolved world used
    OUT/README.md            what the datasets are
    OUT/<dataset>/labels.yaml and the images/labels/annotations of each split
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from babelseg.data.synth.readme import readme_text
from babelseg.data.synth.sample import render_sample, split_paths, write_sample
from babelseg.data.synth.schema import is_path_component
from babelseg.data.synth.views import DatasetView
from babelseg.data.synth.world import World
from babelseg.data.synth.world_yaml import load_world
from babelseg.data.synth.writers import coco_categories, write_json, write_label_space
from babelseg.data.workers import die_with_parent

TOP_FILES = ("datasets.yaml", "relations.json", "world.yaml", "README.md")
MARKER = ".babelseg-synth"
"""Written into every dataset folder ``synth`` creates: only such folders are ever deleted."""


@dataclass
class GenerationSummary:
    """What ``generate`` wrote.

    Attributes:
        out_dir: The output folder.
        seconds: Wall time.
        images: ``{dataset: {split: number of images}}``.
        label_images: ``{dataset: {label: number of images where it appears}}``.
    """

    out_dir: Path
    seconds: float
    images: dict[str, dict[str, int]] = field(default_factory=dict)
    label_images: dict[str, dict[str, int]] = field(default_factory=dict)

    def missing_labels(self) -> dict[str, list[str]]:
        """Labels that appear in no generated image, per dataset (empty lists left out)."""
        out = {
            d: [lab for lab, n in counts.items() if n == 0]
            for d, counts in self.label_images.items()
        }
        return {d: labs for d, labs in out.items() if labs}


_STATE: dict[str, Any] = {}


def _init_worker(world: World, out_dir: str, seed: int, scale: str, parent_pid: int) -> None:
    import cv2

    die_with_parent(parent_pid)  # a killed `synth` leaves no worker writing on

    cv2.setNumThreads(1)
    _STATE.update(world=world, out=Path(out_dir), seed=seed, scale=scale)


def _work(task: tuple[int, str, int]) -> dict[str, Any]:
    d, split, index = task
    world: World = _STATE["world"]
    view = world.datasets[d]
    sample = render_sample(
        world, view, split=split, index=index, seed=_STATE["seed"], scale=_STATE["scale"]
    )
    return write_sample(sample, view, _STATE["out"] / view.name, split, index)


def _prepare(out: Path, world: World, overwrite: bool) -> None:
    """Make ``out`` ready: remove what a previous ``synth`` wrote there, and nothing else.

    Only folders directly inside ``out`` that carry the marker file a previous run wrote are
    deleted (never a symlink, never a name with a path separator or ``..``, whatever a stale
    ``relations.json`` lists); a dataset folder the world needs that is there without the
    marker is an error.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder.")
    if out.is_dir() and any(out.iterdir()):
        previous = out / "relations.json"
        if not previous.is_file() and not overwrite:
            raise ValueError(
                f"{out} is not empty and holds no SynthWorld output; choose an empty folder "
                "or pass --overwrite."
            )
        names = {v.name for v in world.datasets}
        if previous.is_file():
            try:
                names |= set(json.loads(previous.read_text()).get("datasets", {}))
            except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
                pass
        for name in sorted(n for n in names if is_path_component(n)):
            folder = out / name
            if folder.is_dir() and not folder.is_symlink() and (folder / MARKER).is_file():
                shutil.rmtree(folder)
        for f in TOP_FILES:
            if (out / f).is_file() or (out / f).is_symlink():
                (out / f).unlink()
    for view in world.datasets:
        if not is_path_component(view.name):
            raise ValueError(
                f"Dataset name {view.name!r} becomes a folder inside --out, so it must be one "
                "path component (no '/', '\\', ':', '.' or '..'); rename it in the world."
            )
        if os.path.lexists(out / view.name):
            raise ValueError(
                f"{out / view.name} exists and was not written by `babelseg synth` (no {MARKER} "
                f"file inside); move it away or choose another --out."
            )
    out.mkdir(parents=True, exist_ok=True)


def _declaration(view: DatasetView, scale: str) -> dict[str, Any]:
    options = {"reduce_zero_label": True} if view.encoding.get("reduce_zero_label") else {}
    return {
        "name": view.name,
        "format": view.format,
        "root": view.name,
        "task": view.task,
        "annotation": view.annotation,
        "heldout": view.heldout,
        "labels": f"{view.name}/labels.yaml",
        "text_context": view.text_context,
        "splits": {s: split_paths(view, s) for s, n in view.splits[scale].items() if n > 0},
        "options": options,
        "augmentation": {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in view.augmentation.items()
        },
    }


def relations(world: World) -> dict[str, Any]:
    """The ``relations.json`` content: which world classes each dataset label covers."""
    return {
        "world_classes": world.class_names,
        "datasets": {
            v.name: {
                "heldout": v.heldout,
                "labels": {lab.name: list(lab.world_classes) for lab in v.labels},
                "ignored": [c for c, i in zip(world.class_names, v.world_to_label) if i < 0],
            }
            for v in world.datasets
        },
    }


def _run(
    tasks: list[tuple[int, str, int]], world: World, out: Path, seed: int, scale: str, workers: int
) -> Iterator[dict]:
    if workers <= 1:
        _init_state = dict(_STATE)
        _STATE.update(world=world, out=out, seed=seed, scale=scale)
        try:
            yield from map(_work, tasks)
        finally:
            _STATE.clear()
            _STATE.update(_init_state)
        return
    # spawn: no state inherited from the parent (threads of torch or OpenCV); an executor fails
    # loudly (BrokenProcessPool) where a Pool would keep restarting workers that cannot start.
    ctx = multiprocessing.get_context("spawn")
    chunk = max(1, min(16, len(tasks) // (workers * 8)))
    with ProcessPoolExecutor(
        workers,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(world, str(out), seed, scale, os.getpid()),
    ) as pool:
        yield from pool.map(_work, tasks, chunksize=chunk)


def generate(
    out_dir: str | Path,
    *,
    world: World | None = None,
    seed: int = 0,
    scale: str = "default",
    workers: int = 2,
    progress: bool | None = None,
    overwrite: bool = False,
) -> GenerationSummary:
    """Generate every dataset of ``world`` under ``out_dir``.

    Args:
        out_dir: Output folder (created; a previous SynthWorld output there is replaced).
        world: The world; None loads the built-in default.
        seed: Global seed; the output is byte-identical for a seed, whatever ``workers``.
        scale: A scale of the world (``tiny`` or ``default`` in the default world).
        workers: Processes rendering images (1: in this process).
        progress: Show a progress bar; None: only on a terminal.
        overwrite: Allow writing into a non-empty folder that is not a SynthWorld output.
    Returns:
        A summary with image counts and per-label image counts.
    Raises:
        ValueError: unknown scale, or a non-empty foreign output folder.
    """
    start = time.perf_counter()
    world = world if world is not None else load_world()
    if scale not in world.scales:
        raise ValueError(f"Unknown scale '{scale}'; the world defines {sorted(world.scales)}.")
    out = Path(out_dir)
    _prepare(out, world, overwrite)
    tasks = [
        (d, split, i)
        for d, view in enumerate(world.datasets)
        for split, n in view.splits[scale].items()
        for i in range(n)
    ]
    summary = GenerationSummary(out_dir=out, seconds=0.0)
    records: dict[tuple[int, str], list[dict]] = {}
    for view in world.datasets:
        (out / view.name).mkdir()
        (out / view.name / MARKER).write_text("written by `babelseg synth`; deleted by it\n")
        write_label_space(out / view.name / "labels.yaml", view)
        summary.images[view.name] = {s: n for s, n in view.splits[scale].items() if n > 0}
        summary.label_images[view.name] = {lab: 0 for lab in view.label_names}
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=len(tasks), desc="babelseg synth", unit="img", disable=not show)
    for i, record in enumerate(_run(tasks, world, out, seed, scale, workers)):
        d, split, _ = tasks[i]
        records.setdefault((d, split), []).append(record)
        view = world.datasets[d]
        for label in record["labels"]:
            summary.label_images[view.name][view.labels[label].name] += 1
        bar.update(1)
    bar.close()
    for (d, split), recs in records.items():
        _write_coco(world.datasets[d], out / world.datasets[d].name, split, recs)
    declarations = {"datasets": [_declaration(v, scale) for v in world.datasets]}
    (out / "datasets.yaml").write_text(
        f"# SynthWorld '{world.name}', seed {seed}, scale {scale}: generated by `babelseg synth`.\n"
        + yaml.safe_dump(
            declarations, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100
        )
    )
    (out / "relations.json").write_text(json.dumps(relations(world), indent=1) + "\n")
    (out / "world.yaml").write_text(
        yaml.safe_dump(
            world.to_dict(), sort_keys=False, allow_unicode=True, default_flow_style=None, width=100
        )
    )
    (out / "README.md").write_text(readme_text(world, seed=seed, scale=scale))
    summary.seconds = time.perf_counter() - start
    return summary


def _write_coco(view: DatasetView, root: Path, split: str, records: list[dict]) -> None:
    if view.format == "semantic-png":
        return
    images = [r["image"] for r in records]
    categories = coco_categories(view)
    info = {"description": f"SynthWorld dataset {view.name}", "version": "1.0"}
    path = root / split_paths(view, split)["json"]
    if view.format == "coco-panoptic":
        annotations = [
            {
                "image_id": r["image"]["id"],
                "file_name": r["image"]["file_name"].rsplit(".", 1)[0] + ".png",
                "segments_info": r["segments_info"],
            }
            for r in records
        ]
    else:
        annotations = []
        for r in records:
            for a in r["annotations"]:
                annotations.append({"id": len(annotations) + 1, "image_id": r["image"]["id"], **a})
    write_json(
        path,
        {
            "info": info,
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        },
    )
