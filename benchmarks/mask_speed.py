"""Training-step and inference time of ``lmseg`` against transformers'
``Mask2FormerForUniversalSegmentation`` of the same sizes (used by ``mask_recipes.py``).

Both models get the same batch of random images and the same targets (a few random masks per
image), the same backbone depth and widths (our ``tiny`` ResNet-style backbone; transformers'
``ResNetConfig`` with ``layer_type="basic"``, the same stage depths and widths, no pretrained
download), hidden size = our decoder dim, the same number of queries and decoder layers, and the
same number of sampled points per mask. A training step is forward + loss + backward; inference
is a forward pass in eval mode without gradients. Mask2Former runs twice: with its multi-scale
deformable-attention pixel decoder at its smallest (1 layer, keys ``m2f_*``) and at its default
6 layers (keys ``m2f6_*``); ours is an FPN. The three models are timed interleaved (one repeat
of each in turn) so that load changes on a shared machine hit all alike; medians are reported.

``--shape tiny``: our tiny ResNet-style backbone at 128 px, batch 8 (the CPU shape).
``--shape r50-512``: Mask2Former's published ResNet-50 shape: 512 px, batch 8, 100 queries,
9 decoder layers, hidden 256, 12,544 points (both backbones bottleneck ResNet-50, random init).
On CUDA both models run under bf16 autocast and every timing synchronises the device.

    python benchmarks/mask_speed.py [--shape tiny|r50-512] [--device cpu|cuda] [--repeats 7]
        [--json benchmarks/results/mask_speed_cpu_tiny.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from babelseg.data.collate import collate_samples
from babelseg.data.sample import Annotation, Sample, Task
from babelseg.engine.builders import build_recipe
from babelseg.engine.config import load_config
from babelseg.recipes.base import RecipeContext

R50_512 = (
    "model.backbone=resnet50",
    "model.decoder_dim=256",
    "model.num_queries=100",
    "model.query_layers=9",
    "model.query_heads=8",
    "model.query_ffn_dim=2048",
    "recipe.mask.num_points=12544",
)
SHAPES = {"tiny": {"size": 128, "overrides": ()}, "r50-512": {"size": 512, "overrides": R50_512}}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(
    fn: Callable[[], object], repeats: int, warmup: int = 2, device: torch.device | None = None
) -> list[float]:
    device = device or torch.device("cpu")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1000)
    return times


def _samples(batch: int, size: int, num_classes: int, seed: int) -> list[Sample]:
    """Panoptic-style samples: 4 random rectangles per image, random classes."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(batch):
        masks = np.zeros((4, size, size), bool)
        for m in masks:
            y0, x0 = rng.integers(0, size // 2, 2)
            m[y0 : y0 + size // 3, x0 : x0 + size // 3] = True
        out.append(
            Sample(
                image=rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
                dataset="bench",
                task=Task.PANOPTIC,
                annotation=Annotation.CLEAN,
                image_id=str(i),
                masks=masks,
                classes=rng.integers(0, num_classes, 4),
                iscrowd=np.zeros(4, bool),
            )
        )
    return out


def speed_comparison(
    *,
    batch: int = 8,
    size: int = 128,
    num_classes: int = 20,
    embed_dim: int = 384,
    repeats: int = 7,
    overrides: tuple[str, ...] = (),
    device: str = "cpu",
) -> dict:
    """Median training-step and inference milliseconds of the three models and their ratios.

    Args:
        batch / size: Images per step and their side.
        num_classes: Classes of the label space (K).
        embed_dim: Text-embedding dimension D (MiniLM: 384).
        repeats: Timed repeats (after 1 warm-up each).
        overrides: ``key=value`` overrides of configs/lmseg.yaml for our model.
        device: ``cpu`` or ``cuda`` (bf16 autocast on CUDA).
    """
    torch.manual_seed(0)
    dev = torch.device(device)
    cfg = load_config(
        "configs/lmseg.yaml", ["labels.encoder=hash", "recipe.lmseg.prompt_length=0", *overrides]
    )
    context = RecipeContext(
        label_spaces={}, texts={}, label_texts={}, train_datasets=["bench"], embed_dim=embed_dim
    )
    recipe = build_recipe(cfg, embed_dim=embed_dim, context=context).to(dev)
    text = F.normalize(torch.randn(num_classes, embed_dim), dim=1).to(dev)
    # targets built at collation, as the DataLoader workers build them in training
    batch_data = collate_samples(
        _samples(batch, size, num_classes, seed=0), targets=recipe.target_spec
    ).to(dev)
    texts = {"bench": text}

    def autocast():
        if dev.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def ours_step() -> None:
        recipe.train()
        with autocast():
            out = recipe(batch_data.images, texts=[text] * batch)
            norms = recipe.loss_counts(batch_data)
            total = recipe.loss(out, batch_data, texts, normalisers=norms).total
        total.backward()
        recipe.zero_grad(set_to_none=True)

    def ours_infer() -> None:
        recipe.eval()
        with torch.inference_mode(), autocast():
            recipe(batch_data.images, texts=[text] * batch)

    masks = [torch.from_numpy(s.masks).float().to(dev) for s in batch_data.samples]
    classes = [torch.as_tensor(s.classes).to(dev) for s in batch_data.samples]
    fns: dict[str, Callable[[], None]] = {"ours_step": ours_step, "ours_inf": ours_infer}
    params = {}
    for key, layers in (("m2f", 1), ("m2f6", 6)):
        m2f = _mask2former(cfg, num_classes, encoder_layers=layers).to(dev)
        params[key] = sum(p.numel() for p in m2f.parameters()) / 1e6
        fns[f"{key}_step"], fns[f"{key}_inf"] = _m2f_fns(
            m2f, batch_data.images, masks, classes, autocast
        )
    result = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "batch": batch,
        "size": size,
        "backbone": cfg.model.backbone,
        "num_queries": cfg.model.num_queries,
        "decoder_layers": cfg.model.query_layers,
        "hidden": cfg.model.decoder_dim,
        "num_points": cfg.recipe.mask.num_points,
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "params_ours_M": sum(p.numel() for p in recipe.parameters()) / 1e6,
        "params_mask2former_M": params["m2f"],
        "params_mask2former6_M": params["m2f6"],
    }
    # interleave the models so that load changes on a shared machine hit all alike
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(repeats):
        for key, fn in fns.items():
            times[key] += _time(fn, 1, warmup=1 if i == 0 else 0, device=dev)
    for key, values in times.items():
        result[f"{key}_ms_median"] = statistics.median(values)
        result[f"{key}_ms_all"] = [round(v, 1) for v in values]
    for key in ("m2f", "m2f6"):
        suffix = "" if key == "m2f" else "6"
        result[f"step_ratio_m2f{suffix}_over_ours"] = (
            result[f"{key}_step_ms_median"] / result["ours_step_ms_median"]
        )
        result[f"inference_ratio_m2f{suffix}_over_ours"] = (
            result[f"{key}_inf_ms_median"] / result["ours_inf_ms_median"]
        )
    return result


def _m2f_fns(m2f, images, masks, classes, autocast):
    """Mask2Former's training step and inference on the batch."""

    def step() -> None:
        m2f.train()
        with autocast():
            loss = m2f(pixel_values=images, mask_labels=masks, class_labels=classes).loss
        loss.backward()
        m2f.zero_grad(set_to_none=True)

    def infer() -> None:
        m2f.eval()
        with torch.inference_mode(), autocast():
            m2f(pixel_values=images)

    return step, infer


def _mask2former(cfg, num_classes: int, *, encoder_layers: int = 1):
    """transformers' Mask2Former with a ResNet of our backbone's depth (basic blocks for our
    tiny backbone, bottleneck ResNet-50 for ``resnet50``) and ``encoder_layers`` layers of its
    deformable-attention pixel decoder (6 is transformers' default)."""
    from transformers import (
        Mask2FormerConfig,
        Mask2FormerForUniversalSegmentation,
        ResNetConfig,
    )

    if cfg.model.backbone == "resnet50":
        backbone = ResNetConfig(
            embedding_size=64,
            hidden_sizes=[256, 512, 1024, 2048],
            depths=[3, 4, 6, 3],
            layer_type="bottleneck",
            out_features=["stage1", "stage2", "stage3", "stage4"],
        )
    else:
        kwargs = cfg.model.backbone_kwargs
        widths = list(kwargs.get("widths", (32, 64, 128, 192)))
        depths = list(kwargs.get("depths", (1, 1, 2, 1)))
        backbone = ResNetConfig(
            embedding_size=max(widths[0] // 2, 8),
            hidden_sizes=widths,
            depths=depths,
            layer_type="basic",
            out_features=["stage1", "stage2", "stage3", "stage4"],
        )
    dim = cfg.model.decoder_dim
    config = Mask2FormerConfig(
        backbone_config=backbone,
        use_timm_backbone=False,
        use_pretrained_backbone=False,
        feature_size=dim,
        mask_feature_size=dim,
        hidden_dim=dim,
        encoder_feedforward_dim=cfg.model.query_ffn_dim,
        dim_feedforward=cfg.model.query_ffn_dim,
        encoder_layers=encoder_layers,
        decoder_layers=cfg.model.query_layers + 1,  # transformers counts the query init as one
        num_attention_heads=cfg.model.query_heads,
        num_queries=cfg.model.num_queries,
        train_num_points=cfg.recipe.mask.num_points,
        num_labels=num_classes,
    )
    torch.manual_seed(0)
    return Mask2FormerForUniversalSegmentation(config)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=None, help="image side (default: the shape's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shape = SHAPES[args.shape]
    r = speed_comparison(
        batch=args.batch,
        size=args.size or shape["size"],
        repeats=args.repeats,
        overrides=shape["overrides"],
        device=args.device,
    )
    r["shape"] = args.shape
    for k, v in r.items():
        print(f"{k}: {v}")
    if args.json is not None:
        args.json.write_text(json.dumps(r, indent=2) + "\n")


if __name__ == "__main__":
    main()
