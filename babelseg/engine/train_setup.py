"""Set-up pieces of the training loop: seeding, parameter groups, autocast, batch norm under
DDP and the frozen backbone (each a pure function of the recipe and the config)."""

from __future__ import annotations

import contextlib
import random
import warnings

import numpy as np
import torch

from babelseg.engine.config import Config
from babelseg.engine.distributed import DistributedContext


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


NO_DECAY_EMBEDDINGS = (
    "query_feat.weight",
    "query_pos.weight",
    "level_embed.weight",
    "classifier.backgrounds",
)
"""Learned query and level embeddings take no weight decay (Mask2Former's WEIGHT_DECAY_EMBED=0);
nor do DaTaSeg's per-dataset background embeddings (``float[T, D]``), as the shared 1-D one."""


def _param_groups(recipe: torch.nn.Module, cfg: Config) -> list[dict]:
    """AdamW groups: backbone at lr * backbone_lr_mult; no decay on norms, biases, scalars and
    query embeddings."""
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, p in recipe.named_parameters():
        if not p.requires_grad:
            continue
        is_backbone = ".backbone." in f".{name}"
        no_decay = p.ndim <= 1 or name.endswith(NO_DECAY_EMBEDDINGS)
        groups.setdefault((is_backbone, no_decay), []).append(p)
    out = []
    for (is_backbone, no_decay), params in sorted(groups.items()):
        out.append(
            {
                "params": params,
                "lr": cfg.train.lr * (cfg.train.backbone_lr_mult if is_backbone else 1.0),
                "weight_decay": 0.0 if no_decay else cfg.train.weight_decay,
            }
        )
    return out


def _autocast(cfg: Config, device: torch.device):
    if not cfg.train.amp:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _prepare_batchnorm(recipe: torch.nn.Module, ctx: DistributedContext) -> torch.nn.Module:
    """BatchNorm under DDP: synchronised on GPU; on CPU (no SyncBatchNorm) statistics stay per
    process, so say so (GroupNorm, ``model.backbone_kwargs={norm: gn}``, is exact there)."""
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in recipe.modules())
    if ctx.world_size == 1 or not has_bn:
        return recipe
    if ctx.device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(recipe)
    if ctx.is_main:
        warnings.warn(
            "BatchNorm under CPU DDP uses per-process batch statistics (SyncBatchNorm needs GPUs); "
            "for results identical to one process use model.backbone_kwargs={norm: gn}.",
            stacklevel=2,
        )
    return recipe


def _freeze_backbone(
    recipe: torch.nn.Module, parts: tuple[str, ...] = ("backbone",)
) -> list[torch.nn.Module]:
    """Frozen fine-tuning: the modules named ``parts`` (``backbone``; with ``decoder`` the whole
    image encoder, ``train.freeze_encoder``) get no gradients; returns them so the loop keeps
    them in eval mode (fixed normalisation statistics)."""
    frozen = [m for n, m in recipe.named_modules() if n.split(".")[-1] in parts]
    missing = [
        p for p in parts if not any(n.split(".")[-1] == p for n, _ in recipe.named_modules())
    ]
    if missing:
        setting = "train.freeze_encoder" if "decoder" in parts else "train.freeze_backbone"
        raise ValueError(f"{setting}: this recipe's network has no {missing} module.")
    for module in frozen:
        module.requires_grad_(False)
    return frozen
