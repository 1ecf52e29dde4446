"""Why an ``autounify`` run ends with the unified classes it has.

Reads a run's last checkpoint (the warm-up's associations and the final mappings, as saved by
the recipe), recomputes the *initial* unified classes of cross-dataset validation from the
associations (``babelseg/unify/node_count.py``, with the config's thresholds and the label names
encoded by its text encoder), prints them beside the *final* classes (after the graph phases),
and, for each ``--pair``, the containments that decided whether two labels merge: label ``a`` in
label ``b`` and the reverse, each side's best match, the "unlabelled" share, and presence.

Not a test; no training. Example (issue 15's default-world seed-1 run):

    python benchmarks/taxonomy_diagnosis.py runs/taxonomy/run_default_seed1 \\
        --world runs/taxonomy/world_default \\
        --pair "pascal_objects:dining table=home_scenes:table" \\
        --pair "metro_drive:rider=vista_roads:cyclist"

``--drop-redundant`` re-scores the final classes as if the run had trained with
``recipe.autounify.drop_redundant=true`` (exact: that pruning happens once, after the last graph
phase, and the final segmentation stage does not change the mappings). ``--merge-rule stable``
recomputes the initial classes with deferred-acceptance merges (``recipe.autounify.merge_rule``)
from the same saved associations.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from babelseg.cli.labels_cmd import load_label_space  # noqa: E402
from babelseg.engine.builders import build_text_encoder_from_config  # noqa: E402
from babelseg.engine.checkpoint import latest_checkpoint, read_checkpoint_state  # noqa: E402
from babelseg.engine.config import load_config  # noqa: E402
from babelseg.unify.cross_validation import text_similarity  # noqa: E402
from babelseg.unify.mappings import SlotMappings  # noqa: E402
from babelseg.unify.node_count import (  # noqa: E402
    MERGE_RULES,
    containment,
    initial_unified_classes,
    presence,
)
from babelseg.unify.taxonomy import UnifiedClass, load_relations, score_taxonomy  # noqa: E402


def _row(labels: dict[str, str | None]) -> str:
    return " | ".join(f"{d}: {'-' if name is None else name}" for d, name in labels.items())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="an autounify run folder")
    ap.add_argument("--world", type=Path, required=True, help="its world (holds datasets.yaml)")
    ap.add_argument("--pair", action="append", default=[], help="'A:label=B:label'")
    ap.add_argument(
        "--drop-redundant",
        action="store_true",
        help="also score the final classes with recipe.autounify.drop_redundant applied (exact "
        "for a run trained without it: that pruning happens once, after the last graph phase)",
    )
    ap.add_argument(
        "--merge-rule",
        choices=tuple(MERGE_RULES),
        help="recompute the initial classes with this recipe.autounify.merge_rule (default: "
        "the run's)",
    )
    args = ap.parse_args(argv)
    if latest_checkpoint(args.run) is None:
        ap.error(f"{args.run} has no finished checkpoint.")
    cfg = load_config(args.run / "config.yaml")
    latest, saved = read_checkpoint_state(args.run)
    state = saved.get("recipe_state", {})
    if "assoc" not in state:
        ap.error(f"{latest} holds no autounify associations (not an autounify run?).")
    datasets = list(state["assoc"])
    yaml_path = args.world / "datasets.yaml"
    spaces = {d: load_label_space(names=[], data=yaml_path, dataset=d)[0] for d in datasets}
    names = {d: space.names for d, space in spaces.items()}
    assoc = {b: {a: np.asarray(m) for a, m in r.items()} for b, r in state["assoc"].items()}
    soft = {b: {a: np.asarray(m) for a, m in r.items()} for b, r in state["assoc_soft"].items()}
    sizes = {d: len(names[d]) for d in datasets}
    offsets = dict(zip(datasets, np.cumsum([0] + list(sizes.values()))[:-1]))
    encoder = build_text_encoder_from_config(cfg.labels)
    features = encoder.encode([n for d in datasets for n in names[d]]).float()
    s = cfg.recipe.autounify
    rule = args.merge_rule or s.merge_rule
    initial = initial_unified_classes(
        assoc, datasets, soft=soft, text_similarity=text_similarity(features, offsets, sizes),
        min_share=s.min_share, min_match=s.min_match, min_presence=s.min_presence,
        text_weight=s.text_weight, text_floor=s.text_floor,
        merge_rule=rule,
    )  # fmt: skip
    initial = [{d: None if v is None else names[d][v] for d, v in c.items()} for c in initial]

    def saved_mappings() -> SlotMappings:
        slots = SlotMappings(spaces=spaces, num_slots=len(state["active"]))
        slots.load_state(state)
        return slots

    slots = saved_mappings()
    final = [c.labels for c in slots.classes()]
    print(f"initial classes (cross-dataset validation): {len(initial)}")
    print("\n".join(f"  {_row(c)}" for c in initial))
    same = sorted(map(_row, initial)) == sorted(map(_row, final))
    print(f"final classes: {len(final)}" + (" (the same as the initial ones)" if same else ""))
    if not same:
        print("\n".join(f"  {_row(c)}" for c in final))
    relations = load_relations(args.world / "relations.json")
    score = score_taxonomy([UnifiedClass(name=str(i), labels=c) for i, c in enumerate(initial)],
                           relations, datasets)  # fmt: skip
    print(f"initial ({rule} merges): {score['num_unified']} unified classes, pair F1 "
          f"{score['f1']:.3f}")  # fmt: skip
    variants = [("final", slots)]
    if args.drop_redundant:
        dropped = saved_mappings()
        dropped.prune(drop_redundant=True)
        variants.append(("final with drop_redundant", dropped))
    for name, mapping in variants:
        score = score_taxonomy(mapping.classes(), relations, datasets)
        print(
            f"{name}: {score['num_unified']} unified classes for {score['num_world']} world "
            f"classes, pair F1 {score['f1']:.3f} (precision {score['precision']:.3f}, recall "
            f"{score['recall']:.3f})"
        )
    for pair in args.pair:
        (a, la), (b, lb) = (side.split(":", 1) for side in pair.split("="))
        ia, ib = names[a].index(la), names[b].index(lb)
        fwd, bwd = containment(soft, a, b)[ia], containment(soft, b, a)[ib]
        print(
            f"{a}:{la} in {b}:{lb} {fwd[ib]:.3f} (its best: {names[b][fwd[:-1].argmax()]} "
            f"{fwd[:-1].max():.3f}, unlabelled {fwd[-1]:.3f}); reverse {bwd[ia]:.3f} (its best: "
            f"{names[a][bwd[:-1].argmax()]} {bwd[:-1].max():.3f}, unlabelled {bwd[-1]:.3f}); "
            f"presence {presence(assoc, a, ia, b):.2f} / {presence(assoc, b, ib, a):.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
