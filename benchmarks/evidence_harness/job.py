"""One training run of the harness, trained and scored: ``run_job(spec)``, or from the shell
``python job.py SPEC.json`` (the parallel runner starts one such process per run).

The spec (``runs.RunSpec.to_dict``) names the config, its overrides (run folder, seed, steps,
device...), the datasets to score and the image cap; the result (``result.json`` in the run
folder) holds the spec, the ``metrics.json`` mapping, the wall times and the final loss. Paper
tables a recipe keeps in its final checkpoint (``RECIPE_TABLES``: MS3's Table 1) are copied into
that mapping before the checkpoints are removed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

RESULT = "result.json"

RECIPE_TABLES = ("table1", "table8")
"""Keys of a checkpoint's ``recipe_state`` copied into the run's metrics: ``table1`` = MS3's
Table 1 (class-text similarities before and after M_I), ``table8`` = its Table 8 (the multi-label
extension's last extra positives as ``[dataset, label, other dataset, other label]``;
``babelseg/recipes/ms3.py``)."""


def recipe_tables(run_dir: Path) -> dict[str, Any]:
    """The ``RECIPE_TABLES`` entries of the final checkpoint's ``recipe_state`` in ``run_dir``
    (read as JSON and safetensors by ``read_checkpoint_state``: nothing is unpickled); ``{}`` when
    the recipe keeps none. FileNotFoundError when ``run_dir`` holds no checkpoint."""
    from babelseg.engine.checkpoint import read_checkpoint_state

    _, state = read_checkpoint_state(run_dir)
    kept = state.get("recipe_state") or {}
    return {key: kept[key] for key in RECIPE_TABLES if kept.get(key)}


def learned_taxonomy_scores(recipe: Any, datasets_yaml: Path) -> dict[str, Any] | None:
    """Pair precision / recall / F1 and class counts of a recipe's learned unified taxonomy
    against the world's ``relations.json`` (next to ``datasets_yaml``); None for recipes
    without a learned space or worlds without relations."""
    from babelseg.unify.taxonomy import load_relations, score_taxonomy

    relations = datasets_yaml.parent / "relations.json"
    slots = getattr(recipe, "slots", None)
    if not getattr(recipe, "has_unified_space", False) or slots is None:
        return None
    if not relations.is_file() or not slots.initialised:
        return None
    return score_taxonomy(slots.classes(), load_relations(relations), list(recipe.datasets))


def multi_label_scores(
    pairs: list[list], label_spaces: dict[str, Any], datasets_yaml: Path
) -> dict[str, Any] | None:
    """How MS3's extra positives (``table8`` pairs, label indices) stand against the world's
    relations: ``related`` pairs share a world class, ``contained`` ones have the first label's
    world classes inside the second's (the paper's "dirt track -> path", Table 8). None without
    pairs or relations."""
    from babelseg.unify.taxonomy import label_world_classes, load_relations

    relations = datasets_yaml.parent / "relations.json"
    if not pairs or not relations.is_file():
        return None
    datasets = sorted({p[0] for p in pairs} | {p[2] for p in pairs})
    covers = label_world_classes(load_relations(relations), datasets)
    related = contained = 0
    named = []
    for first, a, second, b in pairs:
        x_name, y_name = label_spaces[first].names[a], label_spaces[second].names[b]
        x, y = covers[(first, x_name)], covers[(second, y_name)]
        shared = bool(x & y)
        related += shared
        contained += x <= y
        named.append([f"{first}: {x_name}", f"{second}: {y_name}", shared])
    return {"pairs": len(pairs), "related": related, "contained": contained, "named": named}


def clear_training_outputs(run_dir: Path) -> None:
    """Remove what an earlier training attempt left in ``run_dir`` (checkpoints, config,
    metrics), which a fresh ``train`` refuses to mix with. The harness trains only runs that are
    not cached (failed, or a start retrained for a new fine-tuning run), so those files are
    stale; ``spec.json``, ``job.log`` and ``result.json`` stay."""
    from babelseg.engine.run_folder import RUN_FILES

    for ckpt in run_dir.glob("ckpt_*"):
        shutil.rmtree(ckpt, ignore_errors=True)
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)


def run_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Train ``spec``'s config, score it, write and return the result (errors included)."""
    from babelseg.data.declaration import load_declarations
    from babelseg.engine.config import load_config
    from babelseg.engine.trainer import train
    from babelseg.evaluation.runner import evaluate_datasets
    from babelseg.inference.predictor import Predictor

    run_dir = Path(spec["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    clear_training_outputs(run_dir)
    result: dict[str, Any] = {"spec": spec}
    try:
        cfg = load_config(spec["config"], [*spec["overrides"], f"run_dir={run_dir}"])
        start = time.perf_counter()
        trained = train(cfg, show_progress=False)
        result["train_s"] = time.perf_counter() - start
        result["final_loss"] = float(trained.final_loss)
        start = time.perf_counter()
        predictor = Predictor.from_checkpoint(run_dir, device=spec["device"])
        result["metrics"] = evaluate_datasets(
            predictor,
            load_declarations(cfg.data.datasets_yaml),
            spec["eval"],
            max_images=spec["max_images"],
            show_progress=False,
        )
        result["eval_s"] = time.perf_counter() - start
        taxonomy = learned_taxonomy_scores(predictor.recipe, Path(cfg.data.datasets_yaml))
        if taxonomy is not None:
            result["metrics"]["taxonomy"] = taxonomy
        result["metrics"].update(recipe_tables(run_dir))  # before the checkpoints go
        pairs = result["metrics"].get("table8")  # only ms3 runs with extra positives
        mapping = pairs and multi_label_scores(
            pairs, predictor.label_spaces, Path(cfg.data.datasets_yaml)
        )
        if mapping:
            result["metrics"]["multi_label"] = mapping
    except Exception as e:  # one failed run must not stop the table; the row says it failed
        result["error"] = f"{type(e).__name__}: {e}"
    if not (spec.get("keep_checkpoints", False) or spec.get("has_dependents", False)):
        for ckpt in run_dir.glob("ckpt_*"):
            shutil.rmtree(ckpt, ignore_errors=True)
    tmp = run_dir / (RESULT + ".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, run_dir / RESULT)
    return result


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    result = run_job(spec)
    sys.exit(1 if "error" in result else 0)


if __name__ == "__main__":
    main()
