"""Forward+backward time of the pixel-embedding model for each backbone.

Not a test. Prints a markdown table (and writes JSON with ``--json``). Timings are the median and
the minimum over ``--steps`` steps after ``--warmup`` steps; on a shared machine the minimum is the
better estimate of what the code costs.

Examples:
    python benchmarks/model_step_time.py                      # tiny, batch 8, 128 px, 2 threads
    python benchmarks/model_step_time.py --backbones tiny resnet18 hf --decoder-dim 128
    python benchmarks/model_step_time.py --device cuda --batch 16 --size 512 --threads 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from babelseg.models.builders import BACKBONES, build_pixel_model


def hf_convnext_atto() -> dict:
    """Backbone kwargs of a randomly initialised ConvNeXt of ConvNeXt-atto size."""
    from transformers import ConvNextConfig

    return {"config": ConvNextConfig(depths=[2, 2, 6, 2], hidden_sizes=[40, 80, 160, 320])}


def time_backbone(
    *,
    name: str,
    batch: int,
    size: int,
    decoder_dim: int,
    embed_dim: int,
    steps: int,
    warmup: int,
    device: torch.device,
    channels_last: bool,
) -> dict:
    """Time ``steps`` training steps (forward, mean-square loss, backward) of one model."""
    kwargs = hf_convnext_atto() if name == "hf" else {}
    model = build_pixel_model(
        backbone=name, backbone_kwargs=kwargs, decoder_dim=decoder_dim, embed_dim=embed_dim
    ).to(device)
    images = torch.randn(batch, 3, size, size, device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)

    def step() -> float:
        start = time.perf_counter()
        model(images).embeddings.square().mean().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        model.zero_grad(set_to_none=True)
        return (time.perf_counter() - start) * 1000

    for _ in range(warmup):
        step()
    times = [step() for _ in range(steps)]
    with torch.no_grad():
        model.eval()
        start = time.perf_counter()
        for _ in range(steps):
            model(images)
        if device.type == "cuda":
            torch.cuda.synchronize()
        forward_ms = (time.perf_counter() - start) * 1000 / steps
    return {
        "backbone": name,
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "step_ms_median": statistics.median(times),
        "step_ms_min": min(times),
        "forward_eval_ms": forward_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["tiny"], choices=sorted(BACKBONES))
    parser.add_argument("--batch", type=int, default=8, help="images per step")
    parser.add_argument("--size", type=int, default=128, help="square image side in pixels")
    parser.add_argument("--decoder-dim", type=int, default=64, help="FPN channels")
    parser.add_argument("--embed-dim", type=int, default=384, help="text-embedding dimension")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--channels-last", action="store_true", help="channels_last memory")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = [
        time_backbone(
            name=name,
            batch=args.batch,
            size=args.size,
            decoder_dim=args.decoder_dim,
            embed_dim=args.embed_dim,
            steps=args.steps,
            warmup=args.warmup,
            device=torch.device(args.device),
            channels_last=args.channels_last,
        )
        for name in args.backbones
    ]
    print(
        f"batch {args.batch}, {args.size}x{args.size}, decoder dim {args.decoder_dim}, embed dim "
        f"{args.embed_dim}, {args.threads} threads, device {args.device}\n"
    )
    print("| backbone | params (M) | fwd+bwd median (ms) | fwd+bwd min (ms) | eval fwd (ms) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['backbone']} | {r['params_M']:.2f} | {r['step_ms_median']:.1f} | "
            f"{r['step_ms_min']:.1f} | {r['forward_eval_ms']:.1f} |"
        )
    if args.json is not None:
        args.json.write_text(
            json.dumps({"settings": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
