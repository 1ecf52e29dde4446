"""The taxonomy ``autounify`` learns with ``configs/autounify.yaml``, on two worlds, scored against
their true label relations (issue 15: pair F1 >= 0.95 with the number of unified classes within 1
of the world classes, at a budget under 15 minutes on 2 CPU cores).

Not a test. Worlds:

- ``default``: the default SynthWorld (``babelseg synth --out DIR``, seed 0);
- ``renamed``: a world the recipe's settings were never chosen on: every dataset and label of the
  default world renamed (``renamed_world`` in ``tests/test_autounify_second_world.py``) and
  rendered with another seed (1), so its images differ too.

Each (world, seed) trains ``configs/autounify.yaml`` as shipped (only the world, the seed, the
threads and what ``--set`` names are overridden) in its own process through the CLI, timed from
start to end, then ``babelseg unify --relations`` scores it. Prints a table and writes
``--out`` (``.md`` and ``.json``).

    python benchmarks/taxonomy.py --seeds 0 1 --threads 2 --out benchmarks/results/taxonomy

``--include OLD.json`` adds the rows of an earlier invocation to the table (each row records its
threads; runs made side by side share the cores, so only an idle run's wall time is a budget).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = "configs/autounify.yaml"
TRAIN = ["metro_drive", "vista_roads", "home_scenes", "pascal_objects"]
WORLD_SEEDS = {"default": 0, "renamed": 1}


def _cli(*args: str, threads: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "babelseg", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"babelseg {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc


def world(name: str, work: Path, *, threads: int) -> tuple[Path, list[str]]:
    """The world's folder (generated when missing) and its training datasets' names."""
    root = work / f"world_{name}"
    args = ["synth", "--out", str(root), "--seed", str(WORLD_SEEDS[name])]
    train = list(TRAIN)
    if name == "renamed":
        sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "tests")) if p not in sys.path]
        from test_autounify_second_world import renamed_world

        spec = work / "renamed_world.yaml"
        renamed_world(spec)
        args += ["--world", str(spec)]
        train = [f"lab_{n}" for n in TRAIN]
    if not (root / "relations.json").is_file():
        _cli(*args, threads=threads)
    return root, train


def measure(
    name: str, seed: int, work: Path, *, threads: int, overrides: tuple[str, ...] = ()
) -> dict:
    """Train and score one (world, seed), with the config's ``overrides`` (``key=value``)."""
    root, train = world(name, work, threads=threads)
    tag = "".join(f"_{o.rsplit('.', 1)[-1].replace('=', '-')}" for o in overrides)
    run_dir = work / f"run_{name}_seed{seed}{tag}"
    start = time.perf_counter()
    _cli(
        "train",
        CONFIG,
        f"run_dir={run_dir}",
        f"data.datasets_yaml={root / 'datasets.yaml'}",
        f"data.train=[{', '.join(train)}]",
        f"train.seed={seed}",
        f"train.threads={threads}",
        "train.eval_at_end=false",
        *overrides,
        threads=threads,
    )
    wall = time.perf_counter() - start
    proc = _cli(
        "unify", "--run", str(run_dir), "--relations", str(root / "relations.json"), "--json",
        threads=threads,
    )  # fmt: skip
    score = json.loads(proc.stdout)
    row = {"world": name, "seed": seed, "threads": threads, "train_seconds": round(wall, 1)}
    row |= {"overrides": list(overrides)} if overrides else {}
    return row | score


def markdown(rows: list[dict]) -> str:
    lines = [
        "| world | seed | pair precision | recall | F1 | unified classes | world classes "
        "| train wall (s) | threads | overrides |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['world']} | {r['seed']} | {r['precision']:.3f} | {r['recall']:.3f} "
            f"| **{r['f1']:.3f}** | {r['num_unified']} | {r['num_world']} | {r['train_seconds']} "
            f"| {r.get('threads', '?')} | {' '.join(r.get('overrides', [])) or '-'} |"
        )
    f1 = [r["f1"] for r in rows]
    lines.append("")
    lines.append(f"Median F1 {statistics.median(f1):.3f}, minimum {min(f1):.3f}; unified classes "
                 f"{sorted({r['num_unified'] for r in rows})}.")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--worlds", nargs="+", default=list(WORLD_SEEDS), choices=list(WORLD_SEEDS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "taxonomy")
    ap.add_argument("--out", type=Path, default=None, help="write OUT.md and OUT.json")
    ap.add_argument(
        "--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
        help="config overrides for every run (recorded in its row), e.g. "
        "recipe.autounify.drop_redundant=true",
    )  # fmt: skip
    ap.add_argument(
        "--include", type=Path, nargs="*", default=[],
        help="earlier runs' JSON files whose rows the table also reports",
    )  # fmt: skip
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    rows = [row for path in args.include for row in json.loads(path.read_text())]
    for name in args.worlds:
        for seed in args.seeds:
            rows.append(
                measure(
                    name, seed, args.work, threads=args.threads, overrides=tuple(args.overrides)
                )
            )
            print(json.dumps(rows[-1]), flush=True)
    table = markdown(rows)
    print(table)
    if args.out is not None:
        args.out.with_suffix(".md").write_text(table)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
