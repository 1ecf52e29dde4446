"""``babelseg unify``: export and score the taxonomy an ``autounify`` run learned."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "Export the unified taxonomy of an autounify run, or score it against relations.json."
EPILOG = """examples:
  babelseg unify --run runs/autounify --out taxonomy.yaml
  babelseg unify --run runs/autounify --relations sw/relations.json
  babelseg unify --run runs/autounify --relations sw/relations.json --json

--out writes every unified class with a readable name (from its dataset labels) and, per training
dataset, the label it maps to (null: that dataset leaves the class unlabelled). --relations
scores the mappings against SynthWorld's ground truth: precision, recall and F1 over pairs of
labels from different datasets that share a world class, and the number of unified classes
against the number of world classes the training datasets label.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="run dir or checkpoint folder")
    p.add_argument("--out", metavar="taxonomy.yaml", help="write the taxonomy as YAML")
    p.add_argument("--relations", metavar="relations.json", help="score against SynthWorld truth")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")


def load_classes(run: str | Path):
    """The unified classes and training datasets of a trained ``autounify`` run."""
    from babelseg.inference.predictor import Predictor
    from babelseg.recipes.autounify import AutoUnifyRecipe

    recipe = Predictor.from_checkpoint(run).recipe
    if not isinstance(recipe, AutoUnifyRecipe):
        raise ValueError(
            f"{run} was trained with recipe '{recipe.name}'; `babelseg unify` "
            "needs an autounify run (recipe.name=autounify)."
        )
    recipe.unified_space()  # raises with the fix when the run stopped in its warm-up
    return recipe.slots.classes(), list(recipe.datasets)


def run(args: argparse.Namespace) -> int:
    from babelseg.unify.taxonomy import load_relations, score_taxonomy, taxonomy_yaml

    if not args.out and not args.relations and not args.json:
        args.out = None
    classes, datasets = load_classes(args.run)
    text = taxonomy_yaml(classes)
    if args.out:
        Path(args.out).write_text(text)
    result: dict = {"num_unified": len(classes), "datasets": datasets}
    if args.relations:
        result.update(score_taxonomy(classes, load_relations(args.relations), datasets))
    if args.out:
        result["taxonomy"] = str(args.out)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    if not args.out and not args.relations:
        print(text, end="")
        return 0
    if args.out:
        print(f"taxonomy of {len(classes)} unified classes written to {args.out}")
    if args.relations:
        print(
            f"pairs: precision {result['precision']:.3f}  recall {result['recall']:.3f}  "
            f"F1 {result['f1']:.3f}  ({result['correct_pairs']} correct of "
            f"{result['predicted_pairs']} predicted, {result['true_pairs']} true)"
        )
        print(
            f"unified classes: {result['num_unified']}  world classes in training: "
            f"{result['num_world']}"
        )
    return 0
