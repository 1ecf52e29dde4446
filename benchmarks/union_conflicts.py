"""How many training labels a union-space softmax sets against their own kind.

MS3's eq. 1-2 score every pixel against every class of the union of the training label spaces
(identical names merged). A label of one dataset whose world classes another dataset labels
under another name (tram_city "person" / globe_streets "pedestrian", or a pascal-like
"background" that covers road and sky) has that other label as a *negative* in the softmax,
although the pixels are the same kind. This script counts such labels from a generated world's
``relations.json``: the measurement behind the README's explanation of why ``ms3``'s language
alone trails the cross-entropy baselines, which score each dataset over its own classes.

    python benchmarks/union_conflicts.py WORLD \\
        --train tram_city globe_streets flat_rooms toy_objects

(WORLD: the evidence world's folder, ``runs/evidence_worlds/evidence_world-default-s0-...``.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from babelseg.unify.taxonomy import label_world_classes, true_pairs  # noqa: E402


def union_conflicts(relations: dict, train: list[str]) -> dict[tuple[str, str], list[str]]:
    """``{(dataset, label): other datasets' labels, under other names, that share a world class
    with it}`` for every training label (an empty list: no conflict)."""
    out: dict[tuple[str, str], set[str]] = {
        ref: set() for ref in label_world_classes(relations, train)
    }
    for a, b in true_pairs(relations, train):  # label pairs of different datasets, one world class
        if a[1] != b[1]:  # one name is one union class
            out[a].add(b[1])
            out[b].add(a[1])
    return {ref: sorted(names) for ref, names in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("world", type=Path, help="a generated world folder (holds relations.json)")
    ap.add_argument("--train", nargs="+", required=True, help="the training datasets")
    args = ap.parse_args(argv)
    path = args.world / "relations.json"
    if not path.is_file():
        ap.error(f"{path} does not exist: pass a folder written by `babelseg synth`.")
    conflicts = union_conflicts(json.loads(path.read_text()), args.train)
    hit = {k: v for k, v in conflicts.items() if v}
    not_background = {k: [n for n in v if n != "background"] for k, v in hit.items()}
    named = sum(1 for v in not_background.values() if v)
    print(f"{len(hit)} of {len(conflicts)} training labels share world classes with another")
    print(f"dataset's label under another name; {named} with a label other than 'background':")
    for (d, name), others in sorted(hit.items()):
        print(f"  {d} {name!r}: {', '.join(others)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
