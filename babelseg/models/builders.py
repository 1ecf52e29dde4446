"""Builders: names and plain keyword arguments (from a config) in, wired modules out."""

from __future__ import annotations

import difflib
import functools
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from babelseg.models.backbones.base import Backbone
from babelseg.models.backbones.resnet import ResNetBackbone
from babelseg.models.backbones.tiny import TinyConvBackbone
from babelseg.models.backbones.weights import LoadReport, load_backbone_weights
from babelseg.models.decoders.fpn import FPNPixelDecoder
from babelseg.models.heads.pixel_embedding import PixelEmbeddingHead
from babelseg.models.pixel_model import PixelEmbeddingModel

if TYPE_CHECKING:
    from transformers import PretrainedConfig

logger = logging.getLogger(__name__)


def hf_backbone(
    *,
    name_or_path: str | None = None,
    config: PretrainedConfig | None = None,
    out_indices: Sequence[int] | None = None,
    local_files_only: bool = True,
) -> Backbone:
    """:class:`~babelseg.models.backbones.hf_auto.HFAutoBackbone`, importing transformers only
    when used (it adds seconds to every start-up otherwise)."""
    from babelseg.models.backbones.hf_auto import HFAutoBackbone

    return HFAutoBackbone(
        name_or_path=name_or_path,
        config=config,
        out_indices=out_indices,
        local_files_only=local_files_only,
    )


def clip_backbone(
    *,
    name_or_path: str | None = None,
    config: Mapping[str, Any] | None = None,
    frozen: bool = False,
    image_mean: Sequence[float] | None = None,
    image_std: Sequence[float] | None = None,
    local_files_only: bool = True,
) -> Backbone:
    """:class:`~babelseg.models.backbones.clip_vit.ClipVisionBackbone` (CLIP's ViT image
    encoder), importing transformers only when used; None mean/std take CLIP's constants."""
    from babelseg.models.backbones.clip_vit import CLIP_MEAN, CLIP_STD, ClipVisionBackbone

    return ClipVisionBackbone(
        name_or_path=name_or_path,
        config=config,
        frozen=frozen,
        image_mean=CLIP_MEAN if image_mean is None else image_mean,
        image_std=CLIP_STD if image_std is None else image_std,
        local_files_only=local_files_only,
    )


BACKBONES: dict[str, Callable[..., Backbone]] = {
    "tiny": TinyConvBackbone,
    "resnet18": functools.partial(ResNetBackbone, depth=18),
    "resnet50": functools.partial(ResNetBackbone, depth=50),
    "hf": hf_backbone,
    "clip": clip_backbone,
}

WRAPS_TRANSFORMERS_MODEL = ("hf", "clip")
"""Backbones whose ``.model`` is a transformers model (``model.weights`` files load into it)."""


def backbone_arguments(name: str) -> list[str]:
    """Keyword arguments accepted by backbone ``name`` (those fixed by the name left out).

    Raises:
        ValueError: Unknown name.
    """
    factory = _factory(name)
    fixed = set(factory.keywords) if isinstance(factory, functools.partial) else set()
    return [p for p in inspect.signature(factory).parameters if p not in fixed]


def build_backbone(name: str, **kwargs: Any) -> Backbone:
    """Build a backbone by name.

    Args:
        name: A key of :data:`BACKBONES`.
        **kwargs: Constructor arguments of that backbone.
    Returns:
        The backbone.
    Raises:
        ValueError: Unknown name (lists the valid ones) or unknown arguments (names them and lists
            the valid ones).
    """
    valid = backbone_arguments(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, valid, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(
            f"Unknown argument(s) for backbone {name!r}: {', '.join(hints)}; valid arguments: "
            f"{', '.join(valid)}"
        )
    return _factory(name)(**kwargs)


def build_pixel_model(
    *,
    backbone: str,
    backbone_kwargs: dict[str, Any] | None = None,
    decoder_dim: int = 128,
    embed_dim: int,
    weights: str | Path | None = None,
    weights_prefix: str | None = None,
    decoder_norm: str = "gn",
    head_hidden_dim: int | None = None,
) -> PixelEmbeddingModel:
    """Wire backbone -> FPN pixel decoder -> pixel-embedding head.

    Args:
        backbone: Backbone name (a key of :data:`BACKBONES`).
        backbone_kwargs: Backbone constructor arguments.
        decoder_dim: Channels of the FPN pixel decoder.
        embed_dim: Text-embedding dimension D (384 for MiniLM).
        weights: Optional local weights file (``.safetensors``) loaded into the backbone, e.g. an
            ImageNet ResNet in torchvision/timm layout. For ``"hf"`` it is loaded into the wrapped
            transformers model (keys as written by ``save_pretrained``); prefer ``name_or_path``.
        weights_prefix: Prefix to strip from the file's keys (e.g. ``"backbone."``).
        decoder_norm: Norm of decoder and head: ``"gn"``, ``"bn"`` or ``"none"``.
        head_hidden_dim: Channels of the head's 3x3 conv (default ``decoder_dim``).
    Returns:
        The model; ``model.weights_report`` holds the :class:`LoadReport` when weights were given.
    """
    module, report = build_backbone_with_weights(
        backbone, backbone_kwargs, weights=weights, weights_prefix=weights_prefix
    )
    decoder = FPNPixelDecoder(in_channels=module.out_channels, dim=decoder_dim, norm=decoder_norm)
    head = PixelEmbeddingHead(
        in_dim=decoder_dim, embed_dim=embed_dim, hidden_dim=head_hidden_dim, norm=decoder_norm
    )
    model = PixelEmbeddingModel(backbone=module, decoder=decoder, head=head)
    model.weights_report = report
    return model


def build_backbone_with_weights(
    backbone: str,
    backbone_kwargs: dict[str, Any] | None,
    *,
    weights: str | Path | None = None,
    weights_prefix: str = "",
) -> tuple[Backbone, LoadReport | None]:
    """A backbone, optionally started from a local weights file.

    Args:
        backbone: Backbone name (a key of :data:`BACKBONES`).
        backbone_kwargs: Its constructor arguments.
        weights: Local ``.safetensors`` weights (for ``"hf"`` and ``"clip"``: loaded into the
            wrapped transformers model).
        weights_prefix: Prefix to strip from the file's keys.
    Returns:
        ``(backbone, load report or None)``.
    """
    module = build_backbone(backbone, **(backbone_kwargs or {}))
    report: LoadReport | None = None
    if weights is not None:
        target = module.model if backbone in WRAPS_TRANSFORMERS_MODEL else module
        report = load_backbone_weights(target, weights, prefix=weights_prefix)
        logger.info(
            "Loaded %d backbone tensors from %s (%d missing, %d unexpected, %d shape mismatch)",
            len(report.loaded),
            weights,
            len(report.missing),
            len(report.unexpected),
            len(report.mismatched),
        )
    return module, report


def _factory(name: str) -> Callable[..., Backbone]:
    if name not in BACKBONES:
        close = difflib.get_close_matches(name, list(BACKBONES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"Unknown backbone {name!r}{hint}; valid backbones: {', '.join(BACKBONES)}"
        )
    return BACKBONES[name]
