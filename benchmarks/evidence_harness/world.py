"""The world a harness run measures on, and the role of each of its datasets.

Roles come from the generated ``datasets.yaml`` (held out or not, annotation clean / noisy /
boxes, task, format) and ``relations.json`` (which world classes each label covers), never from
dataset names, so the harness runs unchanged on any world.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from babelseg.data.declaration import load_declarations
from babelseg.data.synth import BUILTIN_WORLDS, generate, load_world


@dataclass(frozen=True, kw_only=True)
class DatasetRole:
    """One dataset's role.

    Attributes:
        name: Dataset name. task: ``semantic`` / ``panoptic`` / ``instance``.
        annotation: ``clean`` / ``noisy`` / ``boxes``. heldout: Never trained on.
        format: On-disk format (``coco-instances`` datasets are scored by mask AP only).
        labels: ``{label: [world classes it covers]}``.
    """

    name: str
    task: str
    annotation: str
    heldout: bool
    format: str
    labels: dict[str, list[str]]

    @property
    def masks(self) -> bool:
        """Trains with masks (semantic or panoptic), not boxes."""
        return self.annotation != "boxes" and self.format != "coco-instances"


@dataclass(frozen=True, kw_only=True)
class WorldRoles:
    """The datasets of a generated world by role (lists keep ``datasets.yaml`` order).

    Attributes:
        root: The generated world folder. datasets_yaml: Its declarations.
        datasets: ``{name: role}``.
    """

    root: Path
    datasets_yaml: Path
    datasets: dict[str, DatasetRole]

    def _names(self, keep) -> list[str]:
        return [n for n, r in self.datasets.items() if keep(r)]

    @property
    def clean(self) -> list[str]:
        """Training datasets with clean masks (the papers' fully supervised data)."""
        return self._names(lambda r: not r.heldout and r.masks and r.annotation == "clean")

    @property
    def noisy(self) -> list[str]:
        return self._names(lambda r: not r.heldout and r.masks and r.annotation == "noisy")

    @property
    def boxes(self) -> list[str]:
        return self._names(lambda r: not r.heldout and r.annotation == "boxes")

    @property
    def heldout(self) -> list[str]:
        """Held-out datasets scored by mIoU (zero-shot)."""
        return self._names(lambda r: r.heldout and r.masks)

    def clean_with_task(self, task: str) -> list[str]:
        return [n for n in self.clean if self.datasets[n].task == task]

    def trained_label_names(self) -> set[str]:
        return {lab for r in self.datasets.values() if not r.heldout for lab in r.labels}

    def novel_labels(self) -> dict[str, list[str]]:
        """``{held-out dataset: its labels whose names no training dataset uses}``."""
        trained = self.trained_label_names()
        out = {
            n: [lab for lab in self.datasets[n].labels if lab not in trained] for n in self.heldout
        }
        return {n: labs for n, labs in out.items() if labs}

    def coarse_labels(self) -> dict[str, list[str]]:
        """``{held-out dataset: labels coarser than any trained label}``: a label covering two
        or more world classes that no single training label covers together."""
        trained = [
            set(classes)
            for r in self.datasets.values()
            if not r.heldout
            for classes in r.labels.values()
        ]
        out = {}
        for n in self.heldout:
            labs = [
                lab
                for lab, classes in self.datasets[n].labels.items()
                if len(classes) >= 2 and not any(set(classes) <= t for t in trained)
            ]
            if labs:
                out[n] = labs
        return out


def read_roles(root: Path) -> WorldRoles:
    """Roles of the world generated in ``root`` (``datasets.yaml`` + ``relations.json``).

    Raises:
        FileNotFoundError: ``root`` holds no generated world.
    """
    decl_path, rel_path = root / "datasets.yaml", root / "relations.json"
    for p in (decl_path, rel_path):
        if not p.is_file():
            raise FileNotFoundError(
                f"{p} not found: {root} is not a generated world; pass a world name or YAML "
                "file to --world (the harness generates it) or run `babelseg synth --out DIR`."
            )
    decls = load_declarations(decl_path)
    relations = json.loads(rel_path.read_text())["datasets"]
    datasets = {}
    for name, d in decls.items():
        datasets[name] = DatasetRole(
            name=name,
            task=str(getattr(d.task, "value", d.task)),
            annotation=str(getattr(d.annotation, "value", d.annotation)),
            heldout=bool(d.heldout),
            format=str(d.format),
            labels={k: list(v) for k, v in relations.get(name, {}).get("labels", {}).items()},
        )
    return WorldRoles(root=root, datasets_yaml=decl_path, datasets=datasets)


def prepare_world(world: str, *, scale: str, seed: int, cache: Path, workers: int) -> WorldRoles:
    """Generate ``world`` (a built-in name, a world YAML, or an already generated folder) or
    reuse the copy in ``cache``; return its roles.

    The cached copy is keyed by the world file's content, the scale and the seed.
    """
    given = Path(world)
    if given.is_dir():
        return read_roles(given)
    path = given if given.is_file() else BUILTIN_WORLDS.get(world)
    if path is None:
        raise FileNotFoundError(
            f"--world {world!r}: not a file, a generated world folder, or a built-in world "
            f"({', '.join(BUILTIN_WORLDS)})."
        )
    digest = hashlib.sha256(path.read_bytes() + f"|{scale}|{seed}".encode()).hexdigest()[:10]
    root = cache / f"{path.stem}-{scale}-s{seed}-{digest}"
    if not (root / "relations.json").is_file():
        print(f"generating world {path} ({scale}, seed {seed}) in {root}", flush=True)
        generate(
            root, world=load_world(path), seed=seed, scale=scale, workers=workers, overwrite=True
        )
    return read_roles(root)
