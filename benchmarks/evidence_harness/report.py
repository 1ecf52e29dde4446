"""A paper's evidence rows from its scored runs, written as ``<paper>.json`` and ``<paper>.md``."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from evidence_harness.claims import Claim, PaperTable, dataset_score, mean_of
from evidence_harness.stats import INTERVAL, QUICK_VERDICT, paired_interval, verdict

Results = Mapping[tuple[str, int], Mapping[str, Any]]
"""``{(configuration, seed): result}`` of one paper (``runs.execute``'s results)."""


def _value(claim_side, results: Results, seed: int) -> float:
    runs = {}
    for name in claim_side.runs:
        result = results.get((name, seed), {})
        if "metrics" not in result:
            return float("nan")
        runs[name] = result["metrics"]
    try:
        return float(claim_side.value(runs))
    except (KeyError, TypeError, ZeroDivisionError):
        return float("nan")


def _clean(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)


def claim_row(
    claim: Claim, results: Results, seeds: Sequence[int], meta: Mapping[str, Any]
) -> dict[str, Any]:
    """One JSON row: the paired per-seed differences of ``claim`` and the verdict."""
    treated = {s: _value(claim.treatment, results, s) for s in seeds}
    control = {s: _value(claim.control, results, s) for s in seeds}
    interval = paired_interval([treated[s] - control[s] for s in seeds])
    return {
        "paper": meta["paper"],
        "claim": claim.claim,
        "table": claim.table,
        "paper_effect": claim.paper_effect,
        "metric": claim.metric,
        "mean": _clean(interval.mean),
        "sd": _clean(interval.sd),
        "n": interval.n,
        "ci95": [_clean(interval.low), _clean(interval.high)],
        "interval": INTERVAL,
        "steps": meta["steps"],
        "device": meta["device"],
        "verdict": verdict(interval, claim.paper_sign, quick=meta["quick"]),
        "treatment": {"label": claim.treatment.label, "per_seed": _per_seed(treated)},
        "control": {"label": claim.control.label, "per_seed": _per_seed(control)},
        "note": claim.note,
    }


def _per_seed(values: Mapping[int, float]) -> dict[str, float | None]:
    return {str(s): _clean(v) for s, v in values.items()}


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:+.{digits}f}"


def _training_mIoU(metrics: Mapping, scored: Sequence[str]) -> float | None:
    """The configuration table's training mIoU: the mean over the ``scored`` datasets, or
    without them the run's own mean over its evaluated training datasets."""
    if not scored:
        return metrics.get("mean_mIoU")
    return _clean(mean_of([dataset_score(metrics, d, "mIoU") for d in scored]))


def _config_rows(table: PaperTable, results: Results, seeds: Sequence[int], steps: dict) -> list:
    trained = f"mean mIoU of {', '.join(table.scored)}" if table.scored else "training mean mIoU"
    lines = [
        f"| configuration | config and overrides | steps | {trained} | held-out mean "
        "mIoU | train s (mean) | failed seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, cfg in table.configs.items():
        got = [results.get((name, s), {}) for s in seeds]
        ok = [r for r in got if "metrics" in r]

        def avg(value: Callable[[Mapping], float | None], rows: list = ok) -> str:
            vals = [v for v in (value(r["metrics"]) for r in rows) if v is not None]
            return f"{sum(vals) / len(vals):.1f}" if vals else "-"

        train_s = [r.get("train_s", 0.0) for r in ok]
        failed = [str(s) for s, r in zip(seeds, got, strict=True) if "metrics" not in r]
        what = (f"{cfg.note}: " if cfg.note else "") + f"`{cfg.config}` "
        what += " ".join(f"`{o}`" for o in cfg.overrides[1:])
        lines.append(
            f"| {name} | {what} | {steps[name]} | "
            f"{avg(lambda m: _training_mIoU(m, table.scored))} | "
            f"{avg(lambda m: m.get('mean_heldout_mIoU'))} | "
            f"{(sum(train_s) / len(train_s)) if train_s else 0:.0f} | {', '.join(failed) or '-'} |"
        )
    return lines


TAXONOMY_KEYS = ("precision", "recall", "f1", "num_unified", "num_world")
"""The learned-taxonomy scores a run's ``metrics.taxonomy`` carries (``babelseg unify``)."""


def _per_run(
    table: PaperTable, results: Results, seeds: Sequence[int], key: str
) -> dict[str, dict[int, Mapping]]:
    """``{configuration: {seed: metrics[key]}}`` over the runs whose metrics have ``key``."""
    out: dict[str, dict[int, Mapping]] = {}
    for name in table.configs:
        for s in seeds:
            got = results.get((name, s), {}).get("metrics", {}).get(key)
            if isinstance(got, Mapping):
                out.setdefault(name, {})[s] = got
    return out


def taxonomy_scores(table: PaperTable, results: Results, seeds: Sequence[int]) -> dict:
    """``{configuration: {score: {seed: value}}}`` for the configurations whose runs learned a
    taxonomy (pair precision / recall / F1 against ``relations.json``, unified and world class
    counts); empty for papers without one."""
    return {
        name: {
            k: {str(s): float(t[k]) for s, t in got.items() if t.get(k) is not None}
            for k in TAXONOMY_KEYS
        }
        for name, got in _per_run(table, results, seeds, "taxonomy").items()
    }


def _taxonomy_lines(scores: Mapping[str, Mapping[str, Mapping[str, float]]]) -> list[str]:
    if not scores:
        return []

    def mean_sd(values: Mapping[str, float], digits: int) -> str:
        v = list(values.values())
        if not v:
            return "-"
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        return f"{statistics.mean(v):.{digits}f} ± {sd:.{digits}f}"

    lines = [
        "",
        "## Learned taxonomy (pair scores against the world's relations.json)",
        "",
        "| configuration | pair precision | pair recall | pair F1 | unified classes per seed "
        "| world classes |",
        "|---|---|---|---|---|---|",
    ]
    for name, score in scores.items():
        counts = ", ".join(f"{int(v)}" for v in score["num_unified"].values()) or "-"
        world = sorted({int(v) for v in score["num_world"].values()})
        lines.append(
            f"| {name} | {mean_sd(score['precision'], 3)} | {mean_sd(score['recall'], 3)} | "
            f"{mean_sd(score['f1'], 3)} | {counts} | {', '.join(map(str, world)) or '-'} |"
        )
    return lines


def multi_label_mappings(table: PaperTable, results: Results, seeds: Sequence[int]) -> dict:
    """``{configuration: {seed: metrics.multi_label}}``: MS3's last extra positives scored
    against the world's relations (``job.multi_label_scores``); empty when no run has any."""
    return {
        name: {str(s): dict(m) for s, m in got.items()}
        for name, got in _per_run(table, results, seeds, "multi_label").items()
    }


def _multi_label_lines(mappings: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    if not mappings:
        return []
    lines = [
        "",
        "## Multi-label mapping at the end of training (MS3 Table 8, against relations.json)",
        "",
        "Extra positives are label pairs of different datasets (pixels of the first are also "
        "paired with the second's embedding). *Related*: the two share a world class; "
        "*inside*: the first's world classes lie inside the second's (the paper's intent).",
        "",
        "| configuration | seed | extra positives | related | inside | unrelated pairs |",
        "|---|---|---|---|---|---|",
    ]
    for name, per_seed in mappings.items():
        for seed, m in per_seed.items():
            wrong = [f"{a} -> {b}" for a, b, ok in m.get("named", []) if not ok]
            lines.append(
                f"| {name} | {seed} | {m['pairs']} | {m['related']} | {m['contained']} | "
                f"{'; '.join(wrong) or '-'} |"
            )
    return lines


def markdown(
    table: PaperTable,
    rows: list[dict],
    meta: Mapping[str, Any],
    config_lines: list,
    taxonomy: Mapping[str, Any] | None = None,
    multi_label: Mapping[str, Any] | None = None,
) -> str:
    """The Markdown report of one paper."""
    quick = meta["quick"]
    lines = [
        f"# Evidence: {table.title}",
        "",
        (
            "**--quick smoke run: toy budget, the numbers and verdicts mean nothing.**\n"
            if quick
            else ""
        )
        + f"Command: `{meta['command']}`. World `{meta['world']}` (scale {meta['scale']}, "
        f"generated in `{meta['world_root']}`), seeds {', '.join(map(str, meta['seeds']))}, "
        f"device {meta['device']}, {meta['steps']} steps of batch 8 per run unless the "
        f"configuration table says otherwise, wall time {meta['wall_min']:.1f} min "
        f"({meta['jobs']} run(s) at a time; timings on a shared machine are noisy).",
        "",
        f"Ours = treatment - control, per seed, then the mean, its standard deviation and the "
        f"{INTERVAL} (t with n - 1 degrees of freedom). Verdict: *reproduced* = the paper's sign "
        "and the interval excludes zero; *contradicted* = the opposite sign and the interval "
        "excludes zero; *inconclusive* otherwise. Rows on a choice the paper does not ablate "
        '("not ablated", or "our choice") read the claim as written: *reproduced* = the '
        "claim holds here (a deviation of ours that wins, or the paper's unablated choice "
        "beating ours), *contradicted* = the opposite holds.",
        "",
        "The wall time is that of the last call; a table finished over several calls (cached "
        "runs are not retrained) took longer in all.",
        "",
        "| claim | paper | paper's effect | metric | treatment - control | ours: mean ± sd (n) "
        "| 95 % interval | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        sd = "n/a" if r["sd"] is None else f"{r['sd']:.2f}"
        lo, hi = r["ci95"]
        ci = "n/a" if lo is None else f"[{lo:+.2f}, {hi:+.2f}]"
        verdict_text = r["verdict"] if quick else f"**{r['verdict']}**"
        lines.append(
            f"| {r['claim']} | {r['table']} | {r['paper_effect']} | {r['metric']} | "
            f"{r['treatment']['label']} - {r['control']['label']} | {_fmt(r['mean'])} ± {sd} "
            f"({r['n']}) | {ci} | {verdict_text} |"
        )
    lines += ["", "## Configurations (means over the seeds that finished)", "", *config_lines]
    lines += _taxonomy_lines(taxonomy or {})
    lines += _multi_label_lines(multi_label or {})
    if table.not_measured:
        lines += ["", "## Not measured here", ""] + [f"- {m}" for m in table.not_measured]
    if quick:
        lines += ["", QUICK_VERDICT.capitalize() + "."]
    return "\n".join(lines) + "\n"


def write_paper(
    table: PaperTable, results: Results, meta: Mapping[str, Any], out: Path, steps: dict
) -> list[dict]:
    """Write ``out/<paper>.json`` and ``out/<paper>.md``; returns the rows."""
    seeds = meta["seeds"]
    rows = [claim_row(c, results, seeds, meta) for c in table.claims]
    runs = {
        f"{name}/seed{s}": {
            k: results.get((name, s), {}).get(k) for k in ("train_s", "eval_s", "error")
        }
        for name in table.configs
        for s in seeds
    }
    out.mkdir(parents=True, exist_ok=True)
    payload = {"meta": dict(meta), "rows": rows, "config_steps": steps, "runs": runs}
    payload["not_measured"] = table.not_measured
    taxonomy = taxonomy_scores(table, results, seeds)
    if taxonomy:
        payload["taxonomy"] = taxonomy
    multi_label = multi_label_mappings(table, results, seeds)
    if multi_label:
        payload["multi_label"] = multi_label
    (out / f"{table.paper}.json").write_text(json.dumps(payload, indent=1) + "\n")
    config_lines = _config_rows(table, results, seeds, steps)
    text = markdown(table, rows, meta, config_lines, taxonomy, multi_label)
    (out / f"{table.paper}.md").write_text(text)
    return rows
