"""Training and scoring the runs of a table: in this process, or in parallel subprocesses
(``--jobs J``), each run's result cached in its folder so that a rerun skips finished runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from evidence_harness.job import RESULT, run_job

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """One run: a paper's configuration at one seed.

    Attributes:
        paper / name / seed: Which configuration of which paper, and the seed.
        run_dir: Its folder. config: Config YAML. overrides: ``key=value`` overrides.
        eval: Datasets to score. max_images: Val images per dataset (None: all).
        device: ``cpu`` / ``cuda``. cost: Estimated seconds (for ordering and the estimate).
        keep_checkpoints: Keep the checkpoint after scoring.
    """

    paper: str
    name: str
    seed: int
    run_dir: str
    config: str
    overrides: tuple[str, ...]
    eval: tuple[str, ...]
    max_images: int | None
    device: str
    cost: float
    keep_checkpoints: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["overrides"], d["eval"] = list(self.overrides), list(self.eval)
        return d


def cached(spec: RunSpec) -> dict[str, Any] | None:
    """The stored result of ``spec`` when it finished without error under the same spec."""
    path = Path(spec.run_dir) / RESULT
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    same = {k: v for k, v in result.get("spec", {}).items() if k != "cost"}
    want = {k: v for k, v in spec.to_dict().items() if k != "cost"}
    return result if same == want and "error" not in result else None


def _subprocess(spec: RunSpec) -> dict[str, Any]:
    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    spec_path = run_dir / "spec.json"
    spec_path.write_text(json.dumps(spec.to_dict(), indent=1))
    env = dict(os.environ)
    paths = [str(ROOT), str(ROOT / "benchmarks"), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    with (run_dir / "job.log").open("w") as log:
        subprocess.run(
            [sys.executable, str(Path(__file__).with_name("job.py")), str(spec_path)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    path = run_dir / RESULT
    if path.is_file():
        return json.loads(path.read_text())
    tail = (run_dir / "job.log").read_text().strip().splitlines()[-3:]
    return {"spec": spec.to_dict(), "error": "job process died: " + " | ".join(tail)}


def execute(
    specs: Sequence[RunSpec], *, jobs: int, time_limit_s: float | None = None
) -> dict[tuple[str, str, int], dict]:
    """Train and score every spec not already cached; ``jobs`` > 1 runs that many at once,
    each in its own process; seed by seed, the most expensive first. No run starts after
    ``time_limit_s`` (those left get an error saying so; the runs in flight finish). Returns
    ``{(paper, name, seed): result}``."""
    results: dict[tuple[str, str, int], dict] = {}
    todo = []
    for s in specs:
        hit = cached(s)
        if hit is not None:
            results[(s.paper, s.name, s.seed)] = hit
        else:
            todo.append(s)
    todo.sort(key=lambda s: (s.seed, -s.cost))  # every configuration at a seed, then the next
    start = time.perf_counter()
    print(f"{len(results)} runs cached, {len(todo)} to train ({jobs} at a time)", flush=True)

    def one(spec: RunSpec) -> dict:
        if time_limit_s is not None and time.perf_counter() - start > time_limit_s:
            return {"spec": spec.to_dict(), "error": "not run: --time-limit reached"}
        result = run_job(spec.to_dict()) if jobs <= 1 else _subprocess(spec)
        state = result.get("error") or f"train {result.get('train_s', 0):.0f} s"
        print(
            f"  [{time.perf_counter() - start:6.0f} s] {spec.paper} / {spec.name} / seed "
            f"{spec.seed}: {state}",
            flush=True,
        )
        return result

    if jobs <= 1:
        done = [one(s) for s in todo]
    else:
        with ThreadPoolExecutor(jobs) as pool:
            done = list(pool.map(one, todo))
    for s, r in zip(todo, done, strict=True):
        results[(s.paper, s.name, s.seed)] = r
    return results
