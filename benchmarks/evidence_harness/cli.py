"""``python benchmarks/evidence.py``: each paper's ablation table on a SynthWorld world, over
seeds, with paired 95 % intervals and verdicts (see ``benchmarks/evidence.py --help``)."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import time
from pathlib import Path

from evidence_harness.budget import QUICK_MAX_IMAGES, Budget
from evidence_harness.claims import PaperTable
from evidence_harness.papers import PAPERS
from evidence_harness.report import write_paper
from evidence_harness.runs import ROOT, RunSpec, cached, config_digest, execute, waves
from evidence_harness.world import WorldRoles, prepare_world

EPILOG = """examples:
  python benchmarks/evidence.py --paper all --world default --quick --out ev_quick
  python benchmarks/evidence.py --paper sentence --world evidence --out benchmarks/results/evidence
  python benchmarks/evidence.py --paper sentence,lmseg --world evidence --device cuda --jobs 10 \\
      --out benchmarks/results/evidence
  python benchmarks/evidence.py --paper lmseg --world my_world.yaml --seeds 0,1,2,3,4 --out ev
  python benchmarks/evidence.py --paper ms3 --configs "L,L + ML" --steps 1200 --out ev_ml

Writes OUT/<paper>.json and OUT/<paper>.md; the runs live in OUT/runs/ (a rerun skips the runs
that finished) and generated worlds in --cache.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="benchmarks/evidence.py",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--paper", required=True, help=f"{', '.join(PAPERS)}, all, or a list a,b")
    ap.add_argument(
        "--world",
        default="evidence",
        help="built-in world (default, evidence), a world YAML, or a generated world folder",
    )
    ap.add_argument(
        "--scale", default=None, help="world scale (default: default; tiny with --quick)"
    )
    ap.add_argument("--world-seed", type=int, default=0, help="seed of the generated world")
    ap.add_argument("--steps", type=int, default=None, help="steps per run (default: per paper)")
    ap.add_argument("--seeds", default=None, help="training seeds (default 0,1,2; quick: 0,1)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time, each in its own process")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per run")
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers per run")
    ap.add_argument("--max-images", type=int, default=None, help="val images per dataset")
    ap.add_argument("--quick", action="store_true", help="toy budget smoke test (< 2 min/paper)")
    ap.add_argument("--cache", type=Path, default=Path("runs/evidence_worlds"), help="worlds")
    ap.add_argument("--keep-checkpoints", action="store_true", help="keep each run's weights")
    ap.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="minutes after which no new run starts; the reports use the runs that finished "
        "(rerun the command to finish the rest: finished runs are cached)",
    )
    ap.add_argument(
        "--configs",
        default=None,
        help="only these configurations of the table (comma-separated names, e.g. 'L,L + ML'; "
        "semicolon-separated when a name holds a comma, e.g. 'L;L + V, alpha 0.5'; one paper) "
        "and the claims that need no other run",
    )
    ap.add_argument("--dry-run", action="store_true", help="print the runs and the estimate")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")
    seeds = args.seeds or ("0,1" if args.quick else "0,1,2")
    try:
        args.seeds = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--seeds must be integers separated by commas, got {args.seeds!r}")
    wanted = list(PAPERS) if args.paper == "all" else [p.strip() for p in args.paper.split(",")]
    unknown = [p for p in wanted if p not in PAPERS]
    if unknown:
        ap.error(f"unknown paper(s) {unknown}; choose from {', '.join(PAPERS)} or all")
    args.papers = wanted
    if args.configs is not None:
        if len(wanted) != 1:
            ap.error("--configs names configurations of one paper; give one --paper")
        separator = ";" if ";" in args.configs else ","
        args.configs = [c.strip() for c in args.configs.split(separator) if c.strip()]
    args.cache, args.out = args.cache.resolve(), args.out.resolve()
    return args


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def plan(
    tables: list[PaperTable], roles: WorldRoles, budget: Budget, args: argparse.Namespace
) -> tuple[list[RunSpec], dict[str, dict[str, int]]]:
    """Every run of every table (one per configuration and seed), and the steps of each. A
    configuration with ``init_from`` starts from that configuration's run at the same seed."""
    specs, steps_of = [], {}
    for table in tables:
        steps_of[table.paper] = {}

        def run_dir(name: str, seed: int, paper: str = table.paper) -> Path:
            return args.out.resolve() / "runs" / paper / _slug(name) / f"seed{seed}"

        starts = {cfg.init_from for cfg in table.configs.values() if cfg.init_from}
        unknown = sorted(starts - set(table.configs))
        if unknown:
            raise ValueError(
                f"{table.paper}: init_from names {unknown}, not configurations of the table "
                f"({', '.join(table.configs)}); name one of those."
            )
        for name, cfg in table.configs.items():
            steps = budget.steps_for(table.paper, cfg.steps_fraction)
            steps_of[table.paper][name] = steps
            common = [
                f"data.datasets_yaml={roles.datasets_yaml}",
                f"data.num_workers={budget.workers}",
                f"train.steps={steps}",
                f"train.warmup_steps={min(100, max(1, steps // 5))}",
                f"train.checkpoint_every={steps}",
                f"train.log_every={max(1, steps // 10)}",
                "train.eval_at_end=false",
                f"train.threads={budget.threads}",
                f"train.device={budget.device}",
                *(["train.amp=true"] if budget.device == "cuda" else []),
            ]
            for seed in args.seeds:
                start = str(run_dir(cfg.init_from, seed)) if cfg.init_from else None
                init = [f"train.init_from={start}"] if start else []
                overrides = (*cfg.overrides_for(steps), *common, f"train.seed={seed}", *init)
                specs.append(
                    RunSpec(
                        paper=table.paper,
                        name=name,
                        seed=seed,
                        run_dir=str(run_dir(name, seed)),
                        config=str(ROOT / cfg.config),
                        overrides=overrides,
                        eval=tuple(cfg.eval or roles.datasets),
                        max_images=budget.max_images,
                        device=budget.device,
                        cost=budget.cost(table.paper, steps),
                        keep_checkpoints=args.keep_checkpoints,
                        config_digest=config_digest(ROOT / cfg.config, overrides),
                        init_from=start,
                        has_dependents=name in starts,
                    )
                )
    return specs, steps_of


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python benchmarks/evidence.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    scale = args.scale or ("tiny" if args.quick else "default")
    cpus = os.cpu_count() or 2
    budget = Budget(
        steps=args.steps,
        device=args.device,
        quick=args.quick,
        max_images=args.max_images or (QUICK_MAX_IMAGES if args.quick else None),
        threads=args.threads
        or (1 if args.quick or args.device == "cuda" else max(1, cpus // args.jobs)),
        workers=args.workers if args.workers is not None else (0 if args.quick else 1),
    )
    start = time.perf_counter()
    roles = prepare_world(
        args.world, scale=scale, seed=args.world_seed, cache=args.cache, workers=min(4, cpus)
    )
    tables = [PAPERS[p](roles) for p in args.papers]
    if args.configs:
        tables = [t.restricted(args.configs) for t in tables]
    specs, steps_of = plan(tables, roles, budget, args)
    estimate = sum(s.cost for s in specs) / args.jobs / 60
    print(
        f"{len(specs)} runs ({', '.join(args.papers)}) on {roles.root}; rough estimate "
        f"{estimate:.0f} min with {args.jobs} at a time on {args.device} (before caching)",
        flush=True,
    )
    if args.dry_run:
        names = {s.run_dir: s.name for s in specs}
        for wave, runs in enumerate(waves(specs)):
            for s in runs:
                after = f" (wave {wave}, starts from {names.get(s.init_from or '')})"
                reuse = " [cached]" if cached(s) is not None else ""
                print(
                    f"  {s.paper} / {s.name} / seed {s.seed}{after if s.init_from else ''}"
                    f"{reuse}: {' '.join(s.overrides)}"
                )
        return 0
    limit = None if args.time_limit is None else args.time_limit * 60
    results = execute(specs, jobs=args.jobs, time_limit_s=limit)
    wall = (time.perf_counter() - start) / 60
    failed = 0
    for table in tables:
        own = {(n, s): r for (p, n, s), r in results.items() if p == table.paper}
        failed += sum("error" in r for r in own.values())
        meta = {
            "paper": table.paper,
            "command": command,
            "world": args.world,
            "world_root": str(roles.root),
            "scale": scale,
            "seeds": args.seeds,
            "device": args.device,
            "steps": budget.steps_for(table.paper),
            "quick": args.quick,
            "jobs": args.jobs,
            "wall_min": wall,
        }
        rows = write_paper(table, own, meta, args.out, steps_of[table.paper])
        print(f"\n{table.paper}: {args.out / (table.paper + '.md')}")
        for r in rows:
            print(f"  {r['claim']}: {r['mean']} (sd {r['sd']}, n {r['n']}) -> {r['verdict']}")
    if failed:
        print(f"\n{failed} run(s) failed; their errors are in OUT/<paper>.json and the run folders")
    return 1 if failed else 0
