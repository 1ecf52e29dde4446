"""``babelseg synth``: generate SynthWorld, the built-in multi-dataset world."""

from __future__ import annotations

import argparse
import os

HELP = (
    "Generate SynthWorld: several synthetic datasets in real formats, with disagreeing taxonomies."
)
EPILOG = """examples:
  babelseg synth --out sw                         # default scale (~3000 images, about a minute)
  babelseg synth --out sw_tiny --scale tiny       # a few images per split, for tests
  babelseg synth --out sw2 --seed 1 --workers 4   # another world sample, 4 processes
  babelseg synth --out mine --world my_world.yaml # your own world (start from sw/world.yaml)
  babelseg synth --out ev --world evidence        # the built-in world of the papers' ablations

Writes OUT/datasets.yaml (declarations for training), OUT/relations.json (world classes covered
by each dataset label), OUT/world.yaml, OUT/README.md and one folder per dataset.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    parser.add_argument(
        "--world",
        metavar="FILE",
        default=None,
        help="world YAML, or a built-in world: default | evidence (default: default)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="global seed (default 0); output is byte-identical per seed",
    )
    parser.add_argument(
        "--scale",
        default="default",
        help="scale defined by the world: tiny | default (default: default)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="rendering processes (default: 2)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="allow writing into a non-empty folder that is not a SynthWorld output",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def run(args: argparse.Namespace) -> int:
    from babelseg.data.synth import generate, load_world

    world = load_world(args.world)
    summary = generate(
        args.out,
        world=world,
        seed=args.seed,
        scale=args.scale,
        workers=args.workers,
        overwrite=args.overwrite,
    )
    total = sum(n for splits in summary.images.values() for n in splits.values())
    print(
        f"Wrote {total} images of {len(summary.images)} datasets to {summary.out_dir} "
        f"in {summary.seconds:.1f} s."
    )
    for name, splits in summary.images.items():
        print(f"  {name}: " + ", ".join(f"{s} {n}" for s, n in splits.items()))
    for name, labels in summary.missing_labels().items():
        print(f"  note: {name}: labels in no image at this scale: {', '.join(labels)}")
    print(f"Declarations: {summary.out_dir / 'datasets.yaml'}")
    return 0
