"""Every recipe and baseline on the SynthWorld training datasets, one budget, one seed.

The shape of LMSeg.txt Table 2 and AutoUniSeg.txt Table 2: per-dataset mIoU (each dataset's val
split in its own label space), the mean, the held-out datasets' mIoU (zero-shot), and wall time.
Rows:

- every name in ``babelseg.recipes.catalog.CATALOG`` (read at run time): ``configs/<name>.yaml``
  when it exists, else ``configs/default.yaml`` with ``recipe.name=<name>``;
- ``single``: ``configs/single.yaml`` once per training dataset, the same total steps split
  across them; each dataset is scored by its own model, each held-out dataset by the best of
  them (an oracle pick, which flatters ``single``; the mean over the models is in the JSON);
- ``sentence-name``: the ``sentence`` recipe with ``labels.text_mode=name`` (bare class names),
  against the ``sentence`` row's descriptions (SentenceLabels.txt Table 4).

Every row trains on ``configs/default.yaml``'s ``data.train`` with the same steps, batch size,
seed and ``train.threads``, through the CLI (``python -m babelseg train ... --no-eval`` then
``python -m babelseg eval``), each in its own process. A row that fails is recorded with its
error and the others go on. Rows run separately (``--recipes``) are merged into the JSON with
the rows already there that share the budget, so late recipes can be added one at a time.

    python benchmarks/multidataset.py --sw sw                   # everything (< 60 min, 2 cores)
    python benchmarks/multidataset.py --sw sw --recipes union,single
    python benchmarks/multidataset.py --sw sw --quick           # ~3-minute smoke run

Writes benchmarks/results/multidataset.{md,json} (``--quick`` writes them in its work folder).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
EXTRA_ROWS = ["single", "sentence-name"]
LABEL_SPACE = {
    "sentence": "text: descriptions",
    "sentence-name": "text: names",
    "union": "one-hot, same names merged",
    "multihead": "one head per dataset",
    "single": "one model per dataset",
    "lmseg": "text, query masks (configs/lmseg.yaml: prompts off)",
    "dataseg": "text, frozen",
    "ms3": "text + learned prompts",
    "autounify": "learned (graph + OT)",
}


def _recipe_names() -> list[str]:
    sys.path.insert(0, str(ROOT))
    from babelseg.recipes.catalog import CATALOG

    return list(CATALOG)


def _datasets(sw: Path, default_config: Path) -> tuple[list[str], list[str]]:
    """The default training datasets and the held-out datasets with semantic ground truth."""
    from babelseg.data.declaration import load_declarations
    from babelseg.data.sample import Annotation
    from babelseg.engine.config import load_config

    train = list(load_config(default_config).data.train)
    decls = load_declarations(sw / "datasets.yaml")
    held = [
        n
        for n, d in decls.items()
        if d.heldout and d.annotation != Annotation.BOXES and d.format != "coco-instances"
    ]
    return train, held


def _babelseg(args: list[str], log: Path) -> float:
    """Run ``python -m babelseg ARGS`` (output to ``log``); returns seconds; raises on failure."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    t0 = time.perf_counter()
    with log.open("a") as out:
        out.write(f"$ python -m babelseg {' '.join(args)}\n")
        out.flush()
        proc = subprocess.run(
            [sys.executable, "-m", "babelseg", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log.read_text().strip().splitlines()[-6:]
        raise RuntimeError(f"`babelseg {args[0]}` exited {proc.returncode}: " + " | ".join(tail))
    return seconds


def _train_eval(
    config: Path, overrides: list[str], run_dir: Path, eval_names: list[str], args
) -> tuple[dict[str, float], float, float]:
    """Train one model and score it; returns ``({dataset: mIoU}, train s, eval s)``."""
    if (run_dir / "config.yaml").is_file():  # this benchmark's earlier run of the row
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "bench.log"
    log.write_text("")
    common = [
        f"run_dir={run_dir}",
        f"data.datasets_yaml={args.sw / 'datasets.yaml'}",
        f"data.batch_size={args.batch_size}",
        f"train.seed={args.seed}",
        f"train.threads={args.threads}",
        "train.checkpoint_every=1000000",
    ]
    train_s = _babelseg(["train", str(config), *common, *overrides, "--no-eval"], log)
    metrics = run_dir / "bench_metrics.json"
    cmd = ["eval", "--run", str(run_dir), "--datasets", ",".join(eval_names), "--out", str(metrics)]
    if args.max_images:
        cmd += ["--max-images", str(args.max_images)]
    eval_s = _babelseg(cmd, log)
    scores = json.loads(metrics.read_text())["datasets"]
    return {n: float(scores[n]["mIoU"]) for n in eval_names}, train_s, eval_s


PHASE_KEYS = {
    "autounify": ["warmup_steps", "alternate_every", "remap_every"],
    "ms3": ["prompt_steps"],
}
"""Recipes whose own configs set step-counted phases: the benchmark scales them to its budget."""


def _scaled_phases(recipe: str, config: Path, steps: int) -> list[str]:
    """Overrides that keep ``recipe``'s phases at the fractions of training its config gives
    them (e.g. a 800-step warm-up of 2000 steps becomes 240 of 600)."""
    if recipe not in PHASE_KEYS:
        return []
    import yaml

    cfg = yaml.safe_load(config.read_text())
    own_steps = int(cfg["train"]["steps"])
    section = cfg["recipe"].get(recipe, {})
    return [
        f"recipe.{recipe}.{key}={max(1, round(int(section[key]) * steps / own_steps))}"
        for key in PHASE_KEYS[recipe]
        if key in section
    ]


def _unify_scores(run_dir: Path, sw: Path) -> dict:
    """``babelseg unify --relations`` of an autounify run: mapping F1 and class counts."""
    log = run_dir / "bench.log"
    out = run_dir / "unify.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [sys.executable, "-m", "babelseg", "unify", "--run", str(run_dir)]
    cmd += ["--relations", str(sw / "relations.json"), "--json"]
    with open(log, "a") as fh:
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=fh, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"`babelseg unify` exited {proc.returncode}; see {log}")
    out.write_text(proc.stdout)
    keep = ("precision", "recall", "f1", "num_unified", "num_world")
    return {k: v for k, v in json.loads(proc.stdout).items() if k in keep}


def _config_of(recipe: str, configs: Path) -> tuple[Path, list[str]]:
    own = configs / f"{recipe}.yaml"
    if own.is_file():
        return own, []
    return configs / "default.yaml", [f"recipe.name={recipe}"]


def run_row(row: str, train: list[str], held: list[str], args) -> dict:
    """Train and score one row; returns its JSON entry."""
    work = args.work / row
    data = f"data.train=[{', '.join(train)}]"
    if row == "single":
        steps = args.steps // len(train)
        own, heldout_by_model, train_s, eval_s = {}, {}, 0.0, 0.0
        for name in train:
            scores, t, e = _train_eval(
                args.configs / "single.yaml",
                [f"data.train=[{name}]", f"train.steps={steps}"],
                work / name,
                [name, *held],
                args,
            )
            own[name] = scores[name]
            heldout_by_model[name] = {h: scores[h] for h in held}
            train_s, eval_s = train_s + t, eval_s + e
            print(f"  single/{name}: {scores}", flush=True)
        best = {h: max(m[h] for m in heldout_by_model.values()) for h in held}
        mean = {h: sum(m[h] for m in heldout_by_model.values()) / len(train) for h in held}
        return {
            "config": "configs/single.yaml",
            "steps": args.steps,
            "steps_per_model": steps,
            "miou": {**own, **best},
            "heldout_mean_over_models": mean,
            "heldout_by_model": heldout_by_model,
            "train_s": train_s,
            "eval_s": eval_s,
        }
    if row == "sentence-name":
        config, overrides = _config_of("sentence", args.configs)
        overrides = [*overrides, "labels.text_mode=name"]
    else:
        config, overrides = _config_of(row, args.configs)
        overrides = [*overrides, *_scaled_phases(row, config, args.steps)]
    scores, train_s, eval_s = _train_eval(
        config, [*overrides, data, f"train.steps={args.steps}"], work, [*train, *held], args
    )
    entry = {
        "config": str(config.relative_to(ROOT) if config.is_relative_to(ROOT) else config),
        "overrides": overrides,
        "steps": args.steps,
        "miou": scores,
        "train_s": train_s,
        "eval_s": eval_s,
    }
    if row == "autounify":
        entry["unify"] = _unify_scores(work, args.sw)
    return entry


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def write_table(path: Path, meta: dict, rows: dict, order: list[str]) -> str:
    """The markdown table of every row in ``rows`` (``order`` first)."""
    train, held = meta["train"], meta["heldout"]
    names = [r for r in order if r in rows] + sorted(r for r in rows if r not in order)
    head = ["row", "label space", *train, "mean", *[f"{h} (held out)" for h in held]]
    head += ["held-out mean", "train s", "eval s"]
    lines = [
        "# Multi-dataset benchmark: every recipe and baseline, one budget (LMSeg / AutoUniSeg "
        "Table 2 shape)",
        "",
        f"Budget per row: {meta['steps']} steps of batch {meta['batch_size']} (128 px crops, "
        f"tiny backbone, MiniLM text), seed {meta['seed']}, `train.threads={meta['threads']}`, "
        f"trained on {', '.join(train)}; `single` splits the {meta['steps']} steps across the "
        f"{len(train)} datasets ({meta['steps'] // len(train)} each, one model per dataset). "
        "Budget chosen to fit the whole benchmark in 60 minutes on 2 idle CPU cores (a "
        "pixel-embedding row trains 600 steps in ~2.5 min there; the total is below). mIoU (%) "
        "on each dataset's val split in its own label space"
        + (f" (at most {meta['max_images']} images each)" if meta.get("max_images") else "")
        + "; held-out datasets are never trained on and are scored zero-shot (the one-hot "
        "baselines through the nearest training label's text). Wall times were measured on a "
        "machine shared with other jobs. Command: `python benchmarks/multidataset.py --sw sw "
        + ("--quick" if meta.get("quick") else f"--steps {meta['steps']}")
        + "` (add `--recipes a,b` to rerun some rows).",
        "",
        "| " + " | ".join(head) + " |",
        "|---" * len(head) + "|",
    ]
    for name in names:
        r = rows[name]
        label = LABEL_SPACE.get(name, "")
        if "error" in r:
            error = " ".join(r["error"].replace("|", "/").split())[:300]
            lines.append(f"| {name} | {label} | failed: {error} |")
            continue
        m = r["miou"]
        cells = [f"{m[n]:.1f}" for n in train] + [f"**{_mean([m[n] for n in train]):.1f}**"]
        mark = "†" if name == "single" else ""
        cells += [f"{m[h]:.1f}{mark}" for h in held] + [f"**{_mean([m[h] for h in held]):.1f}**"]
        cells += [f"{r['train_s']:.0f}", f"{r['eval_s']:.0f}"]
        lines.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
    if "single" in rows and "error" not in rows["single"]:
        mean = rows["single"]["heldout_mean_over_models"]
        lines += [
            "",
            "† `single` on a held-out dataset: the best of its per-dataset models (an oracle "
            "pick); the mean over them is " + ", ".join(f"{h} {mean[h]:.1f}" for h in held) + ".",
        ]
    if "sentence" in rows and "sentence-name" in rows:
        lines += [
            "",
            "Sentence vs. name labels (SentenceLabels.txt Table 4): `sentence` encodes each "
            "class's description, `sentence-name` its bare name, everything else equal.",
        ]
    for name in names:
        phases = [o for o in rows[name].get("overrides", []) if o.startswith("recipe.")]
        phases = [o for o in phases if o.split("=")[0].split(".")[-1] in PHASE_KEYS.get(name, [])]
        if phases:
            lines += [
                "",
                f"`{name}`: its config's phases scaled to this budget: "
                + ", ".join(f"`{o}`" for o in phases)
                + ".",
            ]
        u = rows[name].get("unify")
        if u:
            lines += [
                "",
                f"`{name}` learned taxonomy (`babelseg unify --relations`): pair precision "
                f"{u['precision']:.3f}, recall {u['recall']:.3f}, F1 {u['f1']:.3f}; "
                f"{u['num_unified']} unified classes for {u['num_world']} world classes.",
            ]
    lines += [f"\nNote on `{n}`: {rows[n]['note']}" for n in names if rows[n].get("note")]
    total = sum(r.get("train_s", 0) + r.get("eval_s", 0) for r in rows.values())
    lines += ["", f"Total wall time of these rows: {total / 60:.1f} min."]
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sw", type=Path, default=Path("sw"), help="SynthWorld folder")
    ap.add_argument("--configs", type=Path, default=ROOT / "configs", help="config folder")
    ap.add_argument("--steps", type=int, default=600, help="training steps per row")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="train.threads of every run")
    ap.add_argument("--max-images", type=int, default=None, help="val images per dataset")
    ap.add_argument("--recipes", help="comma-separated rows to run (default: all)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 10 steps, 4 val images")
    ap.add_argument("--work", type=Path, default=None, help="run folders (default runs/bench_md)")
    args = ap.parse_args()
    args.sw, args.configs = args.sw.resolve(), args.configs.resolve()
    if args.quick:
        args.steps, args.max_images = 10, args.max_images or 4
    work = args.work or Path("runs") / ("bench_md_quick" if args.quick else "bench_md")
    args.work = work.resolve()
    out_dir = args.work if args.quick else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)

    order = [*_recipe_names(), *EXTRA_ROWS]
    wanted = order if not args.recipes else [r.strip() for r in args.recipes.split(",")]
    unknown = [r for r in wanted if r not in order]
    if unknown:
        raise SystemExit(f"Unknown row(s) {unknown}; rows: {', '.join(order)}.")
    train, held = _datasets(args.sw, args.configs / "default.yaml")
    meta = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "threads": args.threads,
        "max_images": args.max_images,
        "quick": args.quick,
        "train": train,
        "heldout": held,
    }
    json_path = out_dir / "multidataset.json"
    rows: dict = {}
    if json_path.is_file():
        old = json.loads(json_path.read_text())
        if old.get("meta") == meta:
            rows = {k: v for k, v in old["rows"].items() if k not in wanted}
        else:
            print(f"{json_path}: other budget ({old.get('meta')}); its rows are dropped.")
    for row in wanted:
        print(f"== {row}", flush=True)
        try:
            rows[row] = run_row(row, train, held, args)
        except Exception as e:  # a broken recipe must not stop the others
            rows[row] = {"error": str(e), "steps": args.steps}
        print(f"   {rows[row]}", flush=True)
        json_path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
        write_table(out_dir / "multidataset.md", meta, rows, order)
    print(write_table(out_dir / "multidataset.md", meta, rows, order))


if __name__ == "__main__":
    main()
