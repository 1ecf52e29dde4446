"""``ms3`` on SynthWorld, in the shape of MS3.txt Tables 1-4/6.

1. Pretrain ``ms3`` (language + visual + multi-label, M = 13 context tokens) on the SynthWorld
   training datasets except the target ``vista_roads``, then fine-tune on vista_roads, full and
   frozen-backbone, against the same fine-tuning from scratch (Tables 2-3). SynthWorld's
   held-out datasets have no train split, so the target is a training dataset left out of
   pretraining. Fine-tuning = configs/ms3_finetune.yaml (eq. 1 on the target's labels).
2. Ablation (Tables 4/6): language only, visual only, both, each with and without the
   multi-label extension; scored directly (no fine-tuning) on the pretraining datasets' val
   splits, and zero-shot on vista_roads, night_drive and living_zero (visual-only has no text
   alignment: its known datasets are classified by their visual embeddings V, zero-shot is n/a).
3. Table 1: cosine similarity of close label pairs and the mean pairwise similarity of the union
   label texts, with the frozen MiniLM embeddings and with the learned prompt context.

Budgets (stated in the output): 96 px crops, batch 8, tiny backbone; pretraining and fine-tuning
steps as given. Writes benchmarks/results/ms3.{json,md}.

    python benchmarks/ms3.py --sw sw [--pre-steps 300] [--ft-steps 200] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from babelseg.data.declaration import load_declarations
from babelseg.data.label_source import resolve_label_space
from babelseg.engine.config import load_config
from babelseg.engine.trainer import train
from babelseg.evaluation.runner import evaluate_datasets
from babelseg.inference.predictor import Predictor
from babelseg.labels.encoders.minilm import MiniLMTextEncoder
from babelseg.labels.texts import label_texts

RESULTS = Path(__file__).resolve().parent / "results"
PRETRAIN = ["metro_drive", "home_scenes", "pascal_objects"]
TARGET = "vista_roads"
ZERO_SHOT = [TARGET, "night_drive", "living_zero"]
ABLATION = {  # name -> (language, visual, multi_label)
    "language + visual + multi-label": (True, True, True),
    "language": (True, False, False),
    "visual": (False, True, False),
    "language + visual": (True, True, False),
    "language + multi-label": (True, False, True),
    "visual + multi-label": (False, True, True),
}
PAIRS = [
    ("car", "truck"),
    ("person", "rider"),
    ("sofa", "chair"),
    ("dog", "horse"),
    ("road", "sidewalk"),
    ("grass", "tree"),
    ("bicycle", "motorcycle"),
    ("cat", "dog"),
]


def _common(args, run_dir: Path, steps: int) -> list[str]:
    return [
        f"run_dir={run_dir}",
        f"data.datasets_yaml={Path(args.sw) / 'datasets.yaml'}",
        f"data.crop=[{args.crop}, {args.crop}]",
        f"train.steps={steps}",
        "train.checkpoint_every=1000000",
        "train.eval_at_end=false",
        f"train.threads={args.threads}",
        "data.num_workers=0",
    ]


def _score(run_dir: Path, decls, names, max_images) -> dict[str, float]:
    metrics = evaluate_datasets(
        Predictor.from_checkpoint(run_dir),
        decls,
        names,
        max_images=max_images,
        show_progress=False,
    )
    return {n: metrics["datasets"][n]["mIoU"] for n in names}


def _table1(run_dir: Path, cfg_path: str, sw: Path) -> dict:
    """Similarities of union label texts before (frozen MiniLM) and after prompt learning."""
    predictor = Predictor.from_checkpoint(run_dir)
    recipe = predictor.recipe
    cfg = load_config(cfg_path)
    decls = load_declarations(sw / "datasets.yaml")
    names: dict[str, str] = {}
    for d in PRETRAIN:
        space = resolve_label_space(decls[d])
        strings = label_texts(
            space, mode=cfg.labels.text_mode, template=cfg.labels.template, dataset=d
        )
        for c, s in zip(space.classes, strings, strict=True):
            names.setdefault(s, c.name)
    texts = recipe.union_texts
    before = MiniLMTextEncoder().encode(texts)
    after = F.normalize(recipe.language_embeddings.float().cpu(), dim=1)
    index = {names[t]: i for i, t in enumerate(texts)}
    out = {"pairs": {}, "classes": len(texts)}
    for a, b in PAIRS:
        if a in index and b in index:
            i, j = index[a], index[b]
            out["pairs"][f"{a} / {b}"] = [float(before[i] @ before[j]), float(after[i] @ after[j])]
    off = ~torch.eye(len(texts), dtype=torch.bool)
    out["mean"] = [float((before @ before.T)[off].mean()), float((after @ after.T)[off].mean())]
    return out


def _write(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ms3.json").write_text(json.dumps(results, indent=2))
    m = results["meta"]
    lines = [
        "# ms3 on SynthWorld (MS3.txt Tables 1-4/6 shape)",
        "",
        f"Budgets: {m['pre_steps']} pretraining steps ({m['prompt_steps']} of them the "
        f"prompt-learning stage, M = 13), {m['ft_steps']} fine-tuning steps, batch 8, "
        f"{m['crop']} px crops, tiny backbone, MiniLM descriptions, momentum 0.99, bank 64 per "
        f"class, seed 0; mIoU (%) on val ({m['max_images'] or 'all'} images per dataset for the "
        f"pretraining scores, all 100 for {TARGET} fine-tuning). Pretraining datasets: "
        f"{', '.join(PRETRAIN)}; target {TARGET} is a training dataset left out of pretraining "
        "(SynthWorld's held-out datasets have no train split). Command: "
        f"`{m['command']}`"
        + (" (**--quick smoke run: numbers are meaningless**)" if m["quick"] else "")
        + ".",
        "",
    ]
    ft = results.get("finetune", {})
    if ft:
        lines += [
            f"## Fine-tuning on {TARGET} (Tables 2-3)",
            "",
            "| initialisation | full fine-tuning | frozen backbone |",
            "|---|---|---|",
        ]
        for init in ("scratch", "ms3"):
            full, frozen = ft.get(f"{init}/full"), ft.get(f"{init}/frozen")
            cell = [f"{v:.1f}" if v is not None else "-" for v in (full, frozen)]
            lines.append(f"| {init} | {cell[0]} | {cell[1]} |")
        lines.append("")
    ab = results.get("ablation", {})
    if ab:
        cols = PRETRAIN + ["mean"] + ZERO_SHOT + ["zero-shot mean"]
        lines += [
            "## Ablation, scored straight after pretraining (Tables 4/6)",
            "",
            "| supervision | " + " | ".join(cols) + " | train s |",
            "|---" * (len(cols) + 2) + "|",
        ]
        for name in ABLATION:
            if name not in ab:
                continue
            r = ab[name]
            cells = [f"{r[c]:.1f}" if r.get(c) is not None else "n/a" for c in cols]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['seconds']:.0f} |")
        lines.append("")
    t1 = results.get("table1")
    if t1:
        lines += [
            f"## Language embeddings before / after prompt learning (Table 1), {t1['classes']} "
            "union classes",
            "",
            "| pair | frozen MiniLM | + learned context |",
            "|---|---|---|",
        ]
        for pair, (b, a) in t1["pairs"].items():
            lines.append(f"| {pair} | {b:.2f} | {a:.2f} |")
        lines.append(f"| mean over all pairs | {t1['mean'][0]:.2f} | {t1['mean'][1]:.2f} |")
        lines.append("")
    (RESULTS / "ms3.md").write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sw", default="sw", help="SynthWorld folder (babelseg synth --out DIR)")
    ap.add_argument("--pre-steps", type=int, default=300)
    ap.add_argument("--prompt-steps", type=int, default=60)
    ap.add_argument("--ft-steps", type=int, default=200)
    ap.add_argument("--crop", type=int, default=96)
    ap.add_argument("--max-images", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="smoke run: 6 steps, 4 eval images")
    ap.add_argument("--work", default="runs/bench_ms3")
    args = ap.parse_args()
    if args.quick:
        args.pre_steps, args.prompt_steps, args.ft_steps, args.max_images = 6, 3, 4, 4
    sw, work = Path(args.sw), Path(args.work)
    decls = load_declarations(sw / "datasets.yaml")
    command = (
        "python benchmarks/ms3.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if k in ("pre_steps", "prompt_steps", "ft_steps", "crop", "max_images")
        )
        + (" --quick" if args.quick else "")
    )
    results: dict = {
        "meta": {
            "pre_steps": args.pre_steps,
            "prompt_steps": args.prompt_steps,
            "ft_steps": args.ft_steps,
            "crop": args.crop,
            "max_images": args.max_images,
            "quick": args.quick,
            "command": command,
            "seed": 0,
        },
        "ablation": {},
        "finetune": {},
    }
    t_start = time.perf_counter()
    ablation = list(ABLATION.items())
    for i, (name, (lang, vis, ml)) in enumerate(ablation):
        run_dir = work / ("pre_" + name.replace(" + ", "_").replace("-", ""))
        cfg = load_config(
            "configs/ms3.yaml",
            [
                *_common(args, run_dir, args.pre_steps),
                f"data.train=[{', '.join(PRETRAIN)}]",
                f"recipe.ms3.language={str(lang).lower()}",
                f"recipe.ms3.visual={str(vis).lower()}",
                f"recipe.ms3.multi_label={str(ml).lower()}",
                f"recipe.ms3.prompt_steps={args.prompt_steps}",
            ],
        )
        t0 = time.perf_counter()
        train(cfg, show_progress=False, overwrite=True)
        seconds = time.perf_counter() - t0
        scores = _score(run_dir, decls, PRETRAIN + (ZERO_SHOT if lang else []), args.max_images)
        row = {
            **scores,
            "seconds": seconds,
            "mean": sum(scores[n] for n in PRETRAIN) / len(PRETRAIN),
        }
        if lang:
            row["zero-shot mean"] = sum(scores[n] for n in ZERO_SHOT) / len(ZERO_SHOT)
        results["ablation"][name] = row
        print(name, {k: round(v, 1) for k, v in row.items()}, flush=True)
        if i == 0:  # the full model: Table 1, then fine-tuning from it
            results["table1"] = _table1(run_dir, "configs/ms3.yaml", sw)
            print("table1", results["table1"], flush=True)
            for init, frozen in itertools.product(("scratch", "ms3"), (False, True)):
                ft_dir = work / f"ft_{init}_{'frozen' if frozen else 'full'}"
                over = [
                    *_common(args, ft_dir, args.ft_steps),
                    f"data.train=[{TARGET}]",
                    f"train.freeze_backbone={str(frozen).lower()}",
                ]
                if init == "ms3":
                    over.append(f"train.init_from={run_dir}")
                train(
                    load_config("configs/ms3_finetune.yaml", over),
                    show_progress=False,
                    overwrite=True,
                )
                key = f"{init}/{'frozen' if frozen else 'full'}"
                results["finetune"][key] = _score(ft_dir, decls, [TARGET], None)[TARGET]
                print("finetune", key, round(results["finetune"][key], 1), flush=True)
        results["meta"]["seconds"] = time.perf_counter() - t_start
        _write(results)
    print((RESULTS / "ms3.md").read_text())


if __name__ == "__main__":
    main()
