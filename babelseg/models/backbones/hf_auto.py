"""Adapter for transformers backbones (``AutoBackbone`` model types): ConvNeXt, Swin, DINOv2, ...

Hierarchical backbones (ConvNeXt, Swin, ResNet, ...) already give maps at strides 4, 8, 16, 32;
the adapter selects their last four stages. Plain ViTs (DINOv2) give maps at the patch stride
only; the adapter turns them into a four-level pyramid with a ViTDet-style simple feature pyramid
(two stride-2 deconvs, one deconv, identity, max-pool) on the stride-16 grid.

Input normalisation: the pipeline feeds ImageNet-normalised RGB (mean 0.485/0.456/0.406, std
0.229/0.224/0.225), which is what ConvNeXt, Swin, ResNet and DINOv2 checkpoints on the Hub were
trained with. Checkpoints with another normalisation (CLIP-style vision towers) need their own
mean/std in the data pipeline.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from transformers import MODEL_FOR_BACKBONE_MAPPING, AutoBackbone, AutoConfig, PretrainedConfig

from babelseg.models.backbones.base import Backbone
from babelseg.models.backbones.vit_pyramid import (
    PYRAMID_STRIDES,
    VIT_STRIDE,
    SimpleFeaturePyramid,
    round_up,
    to_stride16,
)


def _is_single_stride(config: PretrainedConfig) -> bool:
    """Whether the config describes a plain ViT (one patch stride) rather than a stage pyramid."""
    return not hasattr(config, "depths") and hasattr(config, "num_hidden_layers")


class HFAutoBackbone(Backbone):
    """A transformers ``AutoBackbone`` as a four-level pyramid at strides 4, 8, 16, 32.

    Exactly one of ``name_or_path`` (hub name or local folder, via ``from_pretrained``) and
    ``config`` (random initialisation, via ``from_config``) is given.

    Args:
        name_or_path: Hub model id or a folder written by ``save_pretrained``.
        config: A transformers config (e.g. ``ConvNextConfig``; copied, not modified), or a plain
            mapping with ``model_type`` and config fields (from YAML), e.g. ``{"model_type":
            "convnext", "depths": [3, 3, 9, 3]}``.
        out_indices: Stage indices to return (``stage_names`` index; 0 is the stem). Default:
            the last four stages of a hierarchical backbone, the last layer of a ViT. A ViT takes
            one index (simple feature pyramid from that layer) or four (one layer per level).
        local_files_only: Never touch the network (the default; set False to download).
    """

    def __init__(
        self,
        *,
        name_or_path: str | None = None,
        config: PretrainedConfig | Mapping[str, Any] | None = None,
        out_indices: Sequence[int] | None = None,
        local_files_only: bool = True,
    ) -> None:
        super().__init__()
        if (name_or_path is None) == (config is None):
            raise ValueError("HFAutoBackbone needs exactly one of name_or_path and config")
        if config is None:
            try:
                config = AutoConfig.from_pretrained(name_or_path, local_files_only=local_files_only)
            except OSError as error:
                raise FileNotFoundError(
                    f"Cannot load a transformers config from {name_or_path!r}: give a folder "
                    "written by save_pretrained, or a hub id that is in the local cache "
                    f"(local_files_only={local_files_only}). Details: {error}"
                ) from error
        if isinstance(config, Mapping):
            config = _config_from_mapping(config)
        config = copy.deepcopy(config)
        self.single_stride = _is_single_stride(config)
        n_stages = len(getattr(config, "stage_names", []))
        if n_stages == 0:
            raise ValueError(
                f"{type(config).__name__} is not a backbone config (no stage_names); use a model "
                "type that transformers' AutoBackbone supports (ConvNeXt, Swin, ResNet, DINOv2, "
                "...)"
            )
        if out_indices is None:
            out_indices = (
                [n_stages - 1] if self.single_stride else list(range(n_stages - 4, n_stages))
            )
        out_indices = [int(i) for i in out_indices]
        expected = (1, 4) if self.single_stride else (4,)
        if len(out_indices) not in expected:
            raise ValueError(
                f"out_indices={out_indices} for {config.model_type}: expected "
                f"{' or '.join(map(str, expected))} indices"
            )
        try:
            config.out_indices = out_indices
        except ValueError as error:
            raise ValueError(
                f"Invalid out_indices={out_indices} for {config.model_type} with stages "
                f"{config.stage_names}: {error}"
            ) from error
        if type(config) not in MODEL_FOR_BACKBONE_MAPPING:
            raise ValueError(
                f"transformers has no backbone class for {config.model_type!r}; use a model type "
                "that AutoBackbone supports (ConvNeXt, Swin, ResNet, DINOv2, ...)"
            )
        model_class = MODEL_FOR_BACKBONE_MAPPING[type(config)]
        if name_or_path is None:
            self.model = AutoBackbone.from_config(config)
        else:
            # Not AutoBackbone.from_pretrained: transformers 5.x asks the Hub whether the repo
            # exists first, which fails offline and for local folders.
            self.model = model_class.from_pretrained(
                name_or_path, config=config, local_files_only=local_files_only
            )
        channels = [int(c) for c in self.model.channels]
        self.patch_size = int(_first(getattr(config, "patch_size", 1)))
        if self.single_stride:
            if len(set(channels)) != 1:
                raise ValueError(f"ViT out_indices {out_indices} give different widths {channels}")
            self.pyramid: SimpleFeaturePyramid | None = SimpleFeaturePyramid(channels=channels[0])
            self.out_channels = self.pyramid.out_channels
        else:
            self.pyramid = None
            self.out_channels = channels
        self.strides = list(PYRAMID_STRIDES)
        self._check_strides_and_freeze_unused()

    @property
    def config(self) -> PretrainedConfig:
        """The transformers config of the wrapped backbone."""
        return self.model.config

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Compute the pyramid.

        Args:
            images: ``float[B, 3, H, W]`` ImageNet-normalised images. Zero-padded (right/bottom)
                to a multiple of 32 (and of the patch size for a ViT).
        Returns:
            Four tensors ``float[B, out_channels[l], ceil(H/32)*32/s_l, ...]`` for
            s = 4, 8, 16, 32.
        """
        height, width = (round_up(s, 32) for s in images.shape[-2:])
        if self.single_stride:  # the patch embedding drops a partial last patch: pad it too
            height, width = round_up(height, self.patch_size), round_up(width, self.patch_size)
        pad_h, pad_w = height - images.shape[-2], width - images.shape[-1]
        grid = (
            round_up(images.shape[-2], 32) // VIT_STRIDE,
            round_up(images.shape[-1], 32) // VIT_STRIDE,
        )
        if pad_h or pad_w:
            images = F.pad(images, (0, pad_w, 0, pad_h))
        maps = list(self.model(pixel_values=images).feature_maps)
        if self.pyramid is None:
            return maps
        if self.patch_size != VIT_STRIDE:
            maps = [to_stride16(m, patch_size=self.patch_size, grid=grid) for m in maps]
        return self.pyramid(maps)

    def _check_strides_and_freeze_unused(self) -> None:
        """Run a 64x64 image through the model (eval mode) to confirm strides 4, 8, 16, 32.

        Parameters that get no gradient (e.g. DINOv2's ``mask_token``, Swin's pooled-output
        norm) are set ``requires_grad=False`` so DistributedDataParallel needs no
        ``find_unused_parameters``.
        """
        was_training = self.training
        self.eval()
        try:
            maps = self.forward(torch.zeros(1, 3, 64, 64))
            sum(m.sum() for m in maps).backward()
        finally:
            self.train(was_training)
        for p in self.parameters():
            if p.requires_grad and p.grad is None:
                p.requires_grad_(False)
            p.grad = None
        sizes = [tuple(m.shape[-2:]) for m in maps]
        expected = [(64 // s, 64 // s) for s in PYRAMID_STRIDES]
        if sizes != expected:
            raise ValueError(
                f"{self.config.model_type} with out_indices {list(self.model.out_indices)} gives "
                f"maps of sizes {sizes} for a 64x64 image; need strides {PYRAMID_STRIDES} "
                f"(sizes {expected}). Choose out_indices of the stride-4..32 stages."
            )


def _config_from_mapping(fields: Mapping[str, Any]) -> PretrainedConfig:
    """Build a transformers config from ``{"model_type": ..., **fields}``."""
    fields = dict(fields)
    model_type = fields.pop("model_type", None)
    if not isinstance(model_type, str):
        raise ValueError(
            f"A config mapping needs a 'model_type' (e.g. 'convnext', 'swin', 'dinov2'); got keys "
            f"{sorted(fields)}"
        )
    try:
        return AutoConfig.for_model(model_type, **fields)
    except ValueError as error:
        raise ValueError(
            f"transformers does not know model_type {model_type!r} (e.g. 'convnext', 'swin', "
            "'resnet', 'dinov2')"
        ) from error


def _first(value: int | Sequence[int]) -> int:
    return value if isinstance(value, int) else value[0]
