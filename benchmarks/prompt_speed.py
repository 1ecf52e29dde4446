"""The ``lmseg`` training step with learnable prompts against the same step without them.

Not a test. Builds the run of ``configs/lmseg.yaml`` (SynthWorld must exist: ``babelseg synth
--out sw``) through the trainer, so the step is the trainer's own: the batch's label texts
(prompted through MiniLM when on), forward with category-guided decoding, matched losses,
backward, AdamW. Each repeat takes the next batch from the trainer's loader (outside the timing)
and runs it once with the prompt learner and once without it (``recipe.prompt = None``: the
frozen text embeddings), alternating which goes first, so load changes on a shared machine hit
both alike. Prints the medians and their ratio; ``--json`` writes every time.

    python benchmarks/prompt_speed.py [--repeats 15] [--threads 2] [overrides ...]
    python benchmarks/prompt_speed.py --text-mode description   # the sentences instead
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from babelseg.engine.config import load_config
from babelseg.engine.trainer import Trainer


def _step(trainer: Trainer, batch) -> float:
    """One training step on ``batch`` as the trainer's loop runs it; returns milliseconds."""
    start = time.perf_counter()
    trainer.recipe.on_step_start(0)
    texts = trainer._step_texts(batch)
    output = trainer._forward(batch, texts)
    normalisers = trainer._normalisers(batch)
    result = trainer.recipe.loss(output, batch, texts, normalisers=normalisers)
    trainer.optimizer.zero_grad(set_to_none=True)
    result.total.backward()
    trainer.optimizer.step()
    return (time.perf_counter() - start) * 1000


def measure(*, repeats: int, threads: int, text_mode: str, overrides: list[str]) -> dict:
    """Median step milliseconds with and without prompts, interleaved on the same batches."""
    run_dir = tempfile.mkdtemp(prefix="prompt_speed_")
    cfg = load_config(
        "configs/lmseg.yaml",
        [
            f"labels.text_mode={text_mode}",
            f"run_dir={run_dir}",
            f"train.threads={threads}",
            "data.num_workers=0",
            *overrides,
        ],
    )
    if cfg.recipe.lmseg.prompt_length <= 0:
        raise ValueError("recipe.lmseg.prompt_length is 0: nothing to compare.")
    trainer = Trainer(cfg, show_progress=False)
    trainer._setup()
    trainer._set_train_mode(True)
    prompt = trainer.recipe.prompt
    batches = iter(trainer.loader)
    times: dict[str, list[float]] = {"with": [], "without": []}
    for i in range(repeats + 2):  # the first two pairs warm up
        batch = next(batches).to(trainer.device)
        order = ("with", "without") if i % 2 == 0 else ("without", "with")
        for which in order:
            trainer.recipe.prompt = prompt if which == "with" else None
            elapsed = _step(trainer, batch)
            if i >= 2:
                times[which].append(elapsed)
    trainer.recipe.prompt = prompt
    strings = {n: trainer.recipe.label_texts[n] for n in trainer.train_names}
    with_ms, without_ms = (statistics.median(times[k]) for k in ("with", "without"))
    return {
        "config": "configs/lmseg.yaml",
        "text_mode": text_mode,
        "prompt_length": cfg.recipe.lmseg.prompt_length,
        "encoder": cfg.labels.encoder,
        "threads": torch.get_num_threads(),
        "batch": cfg.data.batch_size,
        "crop": list(cfg.data.crop),
        "label_texts": sum(len(v) for v in strings.values()),
        "distinct_label_texts": len({s for v in strings.values() for s in v}),
        "repeats": repeats,
        "with_prompts_ms_median": with_ms,
        "without_prompts_ms_median": without_ms,
        "ratio": with_ms / without_ms,
        "with_prompts_ms": [round(t, 1) for t in times["with"]],
        "without_prompts_ms": [round(t, 1) for t in times["without"]],
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=15, help="timed pairs of steps")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--text-mode", default="name", help="labels.text_mode")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("overrides", nargs="*", help="key=value overrides of configs/lmseg.yaml")
    args = ap.parse_args()
    result = measure(
        repeats=args.repeats,
        threads=args.threads,
        text_mode=args.text_mode,
        overrides=args.overrides,
    )
    for key, value in result.items():
        print(f"{key}: {value}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
