"""Training-step and inference time of ``lmseg`` against transformers'
``Mask2FormerForUniversalSegmentation`` of the same sizes (used by ``mask_recipes.py``).

Both models get the same batch of random images and the same targets (a few random masks per
image), the same backbone depth and widths (our ``tiny`` ResNet-style backbone; transformers'
``ResNetConfig`` with ``layer_type="basic"``, the same stage depths and widths, no pretrained
download), hidden size = our decoder dim, the same number of queries and decoder layers, and the
same number of sampled points per mask. A training step is forward + loss + backward; inference
is a forward pass in eval mode without gradients. Mask2Former's pixel decoder keeps its
multi-scale deformable-attention encoder at its smallest (1 layer); ours is an FPN.

    python benchmarks/mask_speed.py [--repeats 7] [--batch 8] [--size 128]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from babelseg.data.collate import collate_samples
from babelseg.data.sample import Annotation, Sample, Task
from babelseg.engine.builders import build_recipe
from babelseg.engine.config import load_config
from babelseg.recipes.base import RecipeContext


def _time(fn: Callable[[], object], repeats: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
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
) -> dict:
    """Median training-step and inference milliseconds of both models and their ratios.

    Args:
        batch / size: Images per step and their side.
        num_classes: Classes of the label space (K).
        embed_dim: Text-embedding dimension D (MiniLM: 384).
        repeats: Timed repeats (after 2 warm-up ones).
        overrides: ``key=value`` overrides of configs/lmseg.yaml for our model.
    """
    torch.manual_seed(0)
    cfg = load_config(
        "configs/lmseg.yaml", ["labels.encoder=hash", "recipe.lmseg.prompt_length=0", *overrides]
    )
    context = RecipeContext(
        label_spaces={}, texts={}, label_texts={}, train_datasets=["bench"], embed_dim=embed_dim
    )
    recipe = build_recipe(cfg, embed_dim=embed_dim, context=context)
    text = F.normalize(torch.randn(num_classes, embed_dim), dim=1)
    # targets built at collation, as the DataLoader workers build them in training
    batch_data = collate_samples(
        _samples(batch, size, num_classes, seed=0), targets=recipe.target_spec
    )
    texts = {"bench": text}

    def ours_step() -> None:
        recipe.train()
        out = recipe(batch_data.images, texts=[text] * batch)
        norms = recipe.loss_counts(batch_data)
        recipe.loss(out, batch_data, texts, normalisers=norms).total.backward()
        recipe.zero_grad(set_to_none=True)

    def ours_infer() -> None:
        recipe.eval()
        with torch.inference_mode():
            recipe(batch_data.images, texts=[text] * batch)

    m2f = _mask2former(cfg, num_classes)
    mask_labels = [torch.from_numpy(s.masks).float() for s in batch_data.samples]
    class_labels = [torch.as_tensor(s.classes) for s in batch_data.samples]

    def m2f_step() -> None:
        m2f.train()
        out = m2f(
            pixel_values=batch_data.images, mask_labels=mask_labels, class_labels=class_labels
        )
        out.loss.backward()
        m2f.zero_grad(set_to_none=True)

    def m2f_infer() -> None:
        m2f.eval()
        with torch.inference_mode():
            m2f(pixel_values=batch_data.images)

    result = {
        "batch": batch,
        "size": size,
        "num_queries": cfg.model.num_queries,
        "decoder_layers": cfg.model.query_layers,
        "hidden": cfg.model.decoder_dim,
        "num_points": cfg.recipe.mask.num_points,
        "threads": torch.get_num_threads(),
        "params_ours_M": sum(p.numel() for p in recipe.parameters()) / 1e6,
        "params_mask2former_M": sum(p.numel() for p in m2f.parameters()) / 1e6,
    }
    # interleave the two models so that load changes on a shared machine hit both alike
    times: dict[str, list[float]] = {
        k: [] for k in ("ours_step", "m2f_step", "ours_inf", "m2f_inf")
    }
    for _ in range(repeats):
        times["ours_step"] += _time(ours_step, 1, warmup=1 if not times["ours_step"] else 0)
        times["m2f_step"] += _time(m2f_step, 1, warmup=1 if not times["m2f_step"] else 0)
        times["ours_inf"] += _time(ours_infer, 1, warmup=1 if not times["ours_inf"] else 0)
        times["m2f_inf"] += _time(m2f_infer, 1, warmup=1 if not times["m2f_inf"] else 0)
    for key, values in times.items():
        result[f"{key}_ms_median"] = statistics.median(values)
        result[f"{key}_ms_all"] = [round(v, 1) for v in values]
    result["step_ratio_m2f_over_ours"] = (
        result["m2f_step_ms_median"] / result["ours_step_ms_median"]
    )
    result["inference_ratio_m2f_over_ours"] = (
        result["m2f_inf_ms_median"] / result["ours_inf_ms_median"]
    )
    return result


def _mask2former(cfg, num_classes: int):
    """transformers' Mask2Former with a basic-block ResNet of our tiny backbone's depth."""
    from transformers import (
        Mask2FormerConfig,
        Mask2FormerForUniversalSegmentation,
        ResNetConfig,
    )

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
        encoder_layers=1,
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
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    r = speed_comparison(batch=args.batch, size=args.size, repeats=args.repeats)
    for k, v in r.items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
