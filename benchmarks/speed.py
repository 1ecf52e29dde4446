"""Speed of the default model: training images/s, inference latency at two resolutions, and
inference time against vocabulary size. Not a test: writes benchmarks/results/speed.{json,md}.

    python benchmarks/speed.py [--repeats 7] [--device cpu] [--threads 2]

Every figure is the median of ``--repeats`` timed runs after warm-up runs. The vocabulary
sweep uses precomputed (random, normalised) text embeddings, because embeddings are encoded
once per vocabulary and cached; the one-off encoding cost of the vocabulary with MiniLM is
measured separately (``encode_*`` rows).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from babelseg.data.collate import collate_samples
from babelseg.data.sample import Annotation, Sample, Task
from babelseg.engine.builders import build_recipe
from babelseg.engine.config import load_config
from babelseg.inference.predictor import labels_at_full_resolution

RESULTS = Path(__file__).resolve().parent / "results"


def median_time(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", default="configs/default.yaml")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-encode", action="store_true", help="skip the MiniLM encoding rows")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    cfg = load_config(args.config)
    embed_dim = 384
    recipe = build_recipe(cfg, embed_dim=embed_dim).to(device)
    rows: list[dict] = []

    # --- training step (forward + L_HD + backward + AdamW), default batch and crop
    b = cfg.data.batch_size
    h, w = cfg.data.crop
    k_train = 12
    rng = np.random.default_rng(0)
    samples = [
        Sample(
            image=rng.integers(0, 255, (h, w, 3), dtype=np.uint8),
            dataset="a" if i < b // 2 else "b",
            task=Task.SEMANTIC,
            annotation=Annotation.CLEAN,
            image_id=str(i),
            semantic=rng.integers(0, k_train, (h, w)).astype(np.int64),
        )
        for i in range(b)
    ]
    batch = collate_samples(samples).to(device)
    texts = {
        n: torch.nn.functional.normalize(torch.randn(k_train, embed_dim), dim=1).to(device)
        for n in ("a", "b")
    }
    opt = torch.optim.AdamW(recipe.parameters(), lr=1e-4)
    recipe.train()

    def train_step() -> None:
        out = recipe(batch.images)
        loss = recipe.loss(
            out, batch, texts, normalisers={"pixels": float(b * h * w), "boxes": 1.0}
        ).total
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    t = median_time(train_step, args.repeats)
    rows.append(
        {"what": "train_step", "batch": b, "size": f"{h}x{w}", "seconds": t, "images_per_s": b / t}
    )

    # --- inference latency at two resolutions (20 labels)
    recipe.eval()
    text20 = torch.nn.functional.normalize(torch.randn(20, embed_dim), dim=1).to(device)
    for size in (128, 512):
        x = torch.randn(1, 3, size, size, device=device)

        @torch.inference_mode()
        def infer(x=x, size=size) -> None:
            logits = recipe.semantic_logits(recipe(x), text20, pixel_major=True)[0]
            labels_at_full_resolution(logits, (size, size))

        t = median_time(infer, args.repeats)
        rows.append({"what": "inference", "labels": 20, "size": f"{size}x{size}", "seconds": t})

    # --- inference against vocabulary size (embeddings precomputed and cached)
    for size in (128, 512):
        x = torch.randn(1, 3, size, size, device=device)
        with torch.inference_mode():
            feats = recipe(x)
        for k in (20, 200, 2000, 10000):
            text = torch.nn.functional.normalize(torch.randn(k, embed_dim), dim=1).to(device)

            @torch.inference_mode()
            def matmul(text=text, feats=feats) -> None:
                recipe.semantic_logits(feats, text, pixel_major=True)

            @torch.inference_mode()
            def head(text=text, feats=feats, size=size) -> None:
                logits = recipe.semantic_logits(feats, text, pixel_major=True)[0]
                labels_at_full_resolution(logits, (size, size))

            t_mm = median_time(matmul, args.repeats)
            t_head = median_time(head, args.repeats)
            rows.append(
                {
                    "what": "vocab_head",
                    "labels": k,
                    "size": f"{size}x{size}",
                    "seconds": t_head,
                    "matmul_seconds": t_mm,
                    "beyond_matmul_seconds": t_head - t_mm,
                }
            )

    # --- one-off cost of encoding a vocabulary (then cached on disk)
    if not args.skip_encode:
        from babelseg.labels.encoders.factory import build_text_encoder

        enc = build_text_encoder("minilm")
        enc.encode(["warm up"])
        for k in (20, 2000):
            texts_k = [f"class number {i}" for i in range(k)]
            t0 = time.perf_counter()
            enc.encode(texts_k)
            rows.append(
                {"what": "encode_minilm_once", "labels": k, "seconds": time.perf_counter() - t0}
            )

    meta = {
        "device": args.device,
        "threads": args.threads,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "config": args.config,
        "repeats": args.repeats,
        "statistic": "median",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "speed.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        "# babelseg speed (default model)",
        "",
        f"device `{args.device}`, {args.threads} threads, torch {torch.__version__}, "
        f"median of {args.repeats} runs. Command: `python benchmarks/speed.py`.",
        "",
        "| what | labels | size | batch | seconds | images/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ips = f"{r['images_per_s']:.1f}" if "images_per_s" in r else ""
        lines.append(
            f"| {r['what']} | {r.get('labels', '')} | {r.get('size', '')} | {r.get('batch', '')} "
            f"| {r['seconds'] * 1000:.1f} ms | {ips} |"
        )
    base = {
        r["size"]: r["seconds"] for r in rows if r["what"] == "vocab_head" and r["labels"] == 20
    }
    lines += [
        "",
        "Vocabulary sweep (text embeddings precomputed, as they are cached): the low-resolution",
        "pixel-text matmul, and the arg-max at full resolution after it, same run:",
        "",
        "| size | labels | matmul | beyond the matmul | total | total vs 20 labels |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["what"] == "vocab_head":
            lines.append(
                f"| {r['size']} | {r['labels']} | {r['matmul_seconds'] * 1000:.1f} ms "
                f"| {r['beyond_matmul_seconds'] * 1000:.1f} ms | {r['seconds'] * 1000:.1f} ms "
                f"| x{r['seconds'] / base[r['size']]:.1f} |"
            )
    (RESULTS / "speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
