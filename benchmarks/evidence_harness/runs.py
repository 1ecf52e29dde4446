"""Training and scoring the runs of a table: in this process, or in parallel subprocesses
(``--jobs J``), each run's result cached in its folder so that a rerun skips finished runs.

A run may start from another run's final checkpoint (``RunSpec.init_from``, fine-tuning): the
runs train in waves, every run after the one it starts from; the checkpoints of a run others
start from are kept until all of those finished without error, then removed (unless
``keep_checkpoints``)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
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
        init_from: The run folder whose final checkpoint initialises this run (its overrides
            carry ``train.init_from``); it trains first. None: no such run.
        has_dependents: Other runs start from this one: the job keeps its checkpoints and the
            runner removes them once those runs finished.
        config_digest: :func:`config_digest` of ``config`` and ``overrides`` when planned, so
            a cached result whose resolved configuration changed since (same path and
            overrides, other settings in the file or other defaults in the code) is not reused.
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
    init_from: str | None = None
    has_dependents: bool = False
    config_digest: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe; ``init_from`` / ``has_dependents`` only when set, so the results cached
        before they existed still match their spec."""
        d = asdict(self)
        d["overrides"], d["eval"] = list(self.overrides), list(self.eval)
        for key, default in (("init_from", None), ("has_dependents", False)):
            if d[key] == default:
                del d[key]
        return d

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.paper, self.name, self.seed)


def config_digest(path: str | Path, overrides: Sequence[str] = ()) -> str:
    """SHA-256 (first 16 hex digits) of the *resolved* run configuration: the code's defaults,
    the YAML file and the overrides, as ``babelseg config`` prints them, less what cannot change
    the run: ``run_dir`` and the sections of recipes other than the run's own (``recipe.ms3``
    when the run trains ``autounify``), so that a setting added to one recipe does not retrain
    every cached run of the others. A cached run is thus retrained when its config file or a
    default of its own recipe or of the shared sections changed. ``"missing"`` / ``"invalid"``
    when the file is absent or refused (the job then fails with the loader's error)."""
    from babelseg.engine.config import load_config
    from babelseg.recipes.catalog import CATALOG

    try:
        resolved = load_config(path, overrides).to_dict()
    except FileNotFoundError:
        return "missing"
    except ValueError:
        return "invalid"
    resolved.pop("run_dir", None)
    recipe = resolved.get("recipe", {})
    for other in set(CATALOG) - {recipe.get("name")}:
        recipe.pop(other, None)
    text = json.dumps(resolved, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def trained_digest(run_dir: str | Path) -> str:
    """:func:`config_digest` of the configuration a run folder says it trained with (the
    ``config.yaml`` the trainer writes), read with today's defaults; ``"missing"`` without one."""
    return config_digest(Path(run_dir) / "config.yaml")


def has_checkpoint(run_dir: str | Path) -> bool:
    """A run folder still holding a finished checkpoint (the ``latest`` pointer may outlive
    the checkpoints the runner removed)."""
    from babelseg.engine.checkpoint import latest_checkpoint

    return latest_checkpoint(Path(run_dir)) is not None


def waves(specs: Sequence[RunSpec]) -> list[list[RunSpec]]:
    """``specs`` in training order: wave 0 holds the runs that start from no run of ``specs``,
    wave n those starting from a run of wave n - 1; each wave seed by seed, the most expensive
    first. ValueError for a cycle."""
    by_dir = {s.run_dir: s for s in specs}
    depth: dict[str, int] = {}

    def level(spec: RunSpec, seen: tuple[str, ...] = ()) -> int:
        if spec.run_dir in seen:
            raise ValueError(f"runs start from each other in a cycle: {' -> '.join(seen)}")
        if spec.run_dir not in depth:
            parent = by_dir.get(spec.init_from or "")
            depth[spec.run_dir] = 0 if parent is None else level(parent, (*seen, spec.run_dir)) + 1
        return depth[spec.run_dir]

    out: list[list[RunSpec]] = [[] for _ in range(1 + max((level(s) for s in specs), default=-1))]
    for s in specs:
        out[level(s)].append(s)
    return [sorted(w, key=lambda s: (s.seed, -s.cost)) for w in out]


def _release(specs: Sequence[RunSpec], results: dict[tuple[str, str, int], dict]) -> None:
    """Remove the checkpoints of runs others start from once all of those finished without
    error (kept when one failed, so that a rerun retries it without training its start)."""
    for s in specs:
        if not s.has_dependents or s.keep_checkpoints:
            continue
        users = [results.get(d.key) for d in specs if d.init_from == s.run_dir]
        if all(r is not None and "error" not in r for r in users):
            for ckpt in Path(s.run_dir).glob("ckpt_*"):
                shutil.rmtree(ckpt, ignore_errors=True)


def cached(spec: RunSpec) -> dict[str, Any] | None:
    """The stored result of ``spec`` when it finished without error under the same spec and,
    when ``spec`` carries a planned digest, the configuration its folder saved resolves to that
    digest (:func:`trained_digest`: what the run trained with, not the digest stored when it
    was planned, so a change of the digest's scope does not discard runs that still match)."""
    path = Path(spec.run_dir) / RESULT
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    ignored = ("cost", "config_digest")
    same = {k: v for k, v in result.get("spec", {}).items() if k not in ignored}
    want = {k: v for k, v in spec.to_dict().items() if k not in ignored}
    if same != want or "error" in result:
        return None
    if spec.config_digest and trained_digest(spec.run_dir) != spec.config_digest:
        return None
    return result


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
    ``time_limit_s`` (those left get an error saying so; the runs in flight finish). A run
    starting from another (``init_from``) trains after it (``waves``), and not at all when that
    one failed. Returns ``{(paper, name, seed): result}``."""
    results: dict[tuple[str, str, int], dict] = {}
    todo = []
    for s in specs:
        hit = cached(s)
        if hit is not None:
            results[s.key] = hit
        else:
            todo.append(s)
    # a finished run whose checkpoint is gone trains again when a run still to train starts from it
    needed = {s.init_from for s in todo if s.init_from}
    for s in specs:
        if s.run_dir in needed and s.key in results and not has_checkpoint(s.run_dir):
            del results[s.key]
            todo.append(s)
    start = time.perf_counter()
    print(f"{len(results)} runs cached, {len(todo)} to train ({jobs} at a time)", flush=True)

    by_dir = {s.run_dir: s for s in specs}

    def one(spec: RunSpec) -> dict:
        if time_limit_s is not None and time.perf_counter() - start > time_limit_s:
            return {"spec": spec.to_dict(), "error": "not run: --time-limit reached"}
        parent = by_dir.get(spec.init_from or "")
        if parent is not None and "error" in results.get(parent.key, {"error": ""}):
            why = (
                f"not run: {parent.name} (seed {parent.seed}), which it starts from, did not finish"
            )
            return {"spec": spec.to_dict(), "error": why}
        result = run_job(spec.to_dict()) if jobs <= 1 else _subprocess(spec)
        state = result.get("error") or f"train {result.get('train_s', 0):.0f} s"
        print(
            f"  [{time.perf_counter() - start:6.0f} s] {spec.paper} / {spec.name} / seed "
            f"{spec.seed}: {state}",
            flush=True,
        )
        return result

    for wave in waves(todo):
        if jobs <= 1:
            done = [one(s) for s in wave]
        else:
            with ThreadPoolExecutor(jobs) as pool:
                done = list(pool.map(one, wave))
        for s, r in zip(wave, done, strict=True):
            results[s.key] = r
        _release(specs, results)
    return results
