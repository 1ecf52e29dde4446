"""A repository config written for the default SynthWorld, moved onto the world a harness run
measures on.

Configs such as ``configs/dataseg.yaml`` name datasets in per-dataset settings (learning-rate
multipliers, panoptic thresholds, loss weights); the recipes refuse names their
``datasets.yaml`` does not declare, and a command-line override cannot remove a key from a
mapping. So when a config names datasets the world lacks, every such mapping is translated by
role: each dataset of the world takes the value of the default-world datasets with its role
(task, annotation, held out), and the translated copy is written into the world's folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from babelseg.data.synth import DEFAULT_WORLD_PATH, load_world
from evidence_harness.world import WorldRoles

Role = tuple[str, str, bool]


def default_world_roles() -> dict[str, Role]:
    """``{dataset: (task, annotation, held out)}`` of the default SynthWorld."""
    world = load_world(DEFAULT_WORLD_PATH)
    return {
        v.name: (str(v.task), str(getattr(v.annotation, "value", v.annotation)), bool(v.heldout))
        for v in world.datasets
    }


def _translate(value: Any, source: dict[str, Role], target: dict[str, Role], where: str) -> Any:
    """``value`` with every non-empty mapping keyed by source dataset names re-keyed onto the
    target datasets of the same role (a role whose source values differ is an error)."""
    if not isinstance(value, dict):
        return value
    if value and set(value) <= set(source) and not set(value) <= set(target):
        out = {}
        for name, role in target.items():
            sources = [k for k in value if source[k] == role]
            distinct = {json.dumps(value[k], sort_keys=True) for k in sources}
            if len(distinct) > 1:
                raise ValueError(
                    f"{where}: {sources} share the role {role} but have different values, so "
                    f"'{name}' of this world has no single value; give it one in the config."
                )
            if sources:
                out[name] = value[sources[0]]
        return out
    return {
        k: _translate(v, source, target, f"{where}.{k}" if where else k) for k, v in value.items()
    }


def world_config(config: str, roles: WorldRoles, *, root: Path) -> str:
    """``config`` (relative to the repository ``root``) when the world declares every dataset
    it names per dataset; otherwise the path of its translated copy in the world's folder.

    Args:
        config: A repository config, e.g. ``configs/dataseg.yaml``.
        roles: The world measured on.
        root: The repository root.
    Returns:
        The config path to train with (``config`` itself, or an absolute path).
    Raises:
        ValueError: two default-world datasets of one role have different values.
    """
    data = yaml.safe_load((root / config).read_text())
    target = {n: (r.task, r.annotation, r.heldout) for n, r in roles.datasets.items()}
    translated = _translate(data, default_world_roles(), target, "")
    if translated == data:
        return config
    out = roles.root / "configs" / Path(config).name
    out.parent.mkdir(parents=True, exist_ok=True)
    text = (
        f"# {config} moved onto the world in {roles.root} by role "
        "(benchmarks/evidence_harness/world_config.py)\n"
        + yaml.safe_dump(translated, sort_keys=False)
    )
    if not out.is_file() or out.read_text() != text:
        out.write_text(text)
    return str(out)
