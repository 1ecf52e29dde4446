"""CLIP's image encoder (transformers ``CLIPVisionModel``, a ViT) as a four-level pyramid.

LMSeg initialises its image encoder from CLIP (LMSeg.txt section 4.1, Table 4: +2.45 mean mIoU
over ImageNet initialisation). The paper's Table 4 uses CLIP-R50; transformers only ships CLIP's
ViTs, so this backbone is a CLIP ViT (``openai/clip-vit-base-patch16`` by default) turned into
the stride-4/8/16/32 pyramid the pixel decoder needs with ViTDet's simple feature pyramid, from
the last layer's patch tokens (after CLIP's own ``post_layernorm``, which CLIP applies to the
class token only; it puts every token on the scale the pretrained head saw).

- Normalisation: the pipeline feeds ImageNet-normalised images to every backbone; this one turns
  them into CLIP-normalised ones (mean 0.48145466/0.4578275/0.40821073, std
  0.26862954/0.26130258/0.27577711) with one exact per-channel affine map, so training,
  ``predict``, ``serve`` and ``export`` need no change.
- Any crop size: the input is zero-padded to a multiple of 32 (and of the patch size), and the
  position embeddings (learnt on a 224 x 224 grid) are interpolated bicubically to its grid.
- ``frozen``: the ViT gets no gradient and stays in eval mode; the pyramid (new, random) trains.
  ``train.freeze_backbone=true`` freezes the pyramid too.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import CLIPVisionConfig, CLIPVisionModel
from transformers.utils import logging as hf_logging

from babelseg.models.backbones.base import IMAGENET_MEAN, IMAGENET_STD, Backbone
from babelseg.models.backbones.vit_pyramid import (
    PYRAMID_STRIDES,
    VIT_STRIDE,
    SimpleFeaturePyramid,
    round_up,
    to_stride16,
    vit_padded_size,
)

logger = logging.getLogger(__name__)

DEFAULT_CLIP = "openai/clip-vit-base-patch16"
"""The CLIP image encoder loaded when neither ``name_or_path`` nor ``config`` is given."""
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
"""RGB mean of CLIP's image preprocessing, on the 0..1 scale (OpenAI's constants)."""
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
"""RGB standard deviation of CLIP's image preprocessing, on the 0..1 scale."""


class ClipVisionBackbone(Backbone):
    """A CLIP ViT image encoder with a simple feature pyramid at strides 4, 8, 16, 32.

    Give ``name_or_path`` (pretrained weights) or ``config`` (random initialisation), not both;
    with neither, ``openai/clip-vit-base-patch16`` is loaded.

    Args:
        name_or_path: Hub model id or a folder written by ``save_pretrained`` of a
            ``CLIPVisionModel`` or a whole ``CLIPModel`` (its text half is ignored).
        config: A ``CLIPVisionConfig`` (copied) or a plain mapping of its fields (from YAML or
            a checkpoint), optionally with ``model_type: clip_vision_model``.
        frozen: Freeze the ViT (no gradients, eval mode); the pyramid still trains.
        image_mean: RGB mean the weights were trained with (0..1 scale).
        image_std: RGB standard deviation the weights were trained with (0..1 scale).
        local_files_only: Never touch the network (the default; set False to download).
    """

    def __init__(
        self,
        *,
        name_or_path: str | None = None,
        config: CLIPVisionConfig | Mapping[str, Any] | None = None,
        frozen: bool = False,
        image_mean: Sequence[float] = CLIP_MEAN,
        image_std: Sequence[float] = CLIP_STD,
        local_files_only: bool = True,
    ) -> None:
        super().__init__()
        if name_or_path is not None and config is not None:
            raise ValueError(
                "backbone clip takes name_or_path (pretrained weights) or config (random "
                f"initialisation), not both; got name_or_path={name_or_path!r} and a config"
            )
        if config is None:
            self.model = _load_pretrained(name_or_path or DEFAULT_CLIP, local_files_only)
        else:
            self.model = CLIPVisionModel(_vision_config(config))
        self.patch_size = int(self.model.config.patch_size)
        self.frozen = bool(frozen)
        if self.frozen:
            self.model.requires_grad_(False)
            self.model.eval()
        self._register_input_conversion(image_mean=image_mean, image_std=image_std)
        self.pyramid = SimpleFeaturePyramid(channels=int(self.model.config.hidden_size))
        self.out_channels = self.pyramid.out_channels
        self.strides = list(PYRAMID_STRIDES)

    @property
    def config(self) -> CLIPVisionConfig:
        """The transformers config of the wrapped ViT."""
        return self.model.config

    def train(self, mode: bool = True) -> ClipVisionBackbone:
        """Set training mode; a frozen ViT stays in eval mode."""
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def to_clip_input(self, images: torch.Tensor) -> torch.Tensor:
        """Re-normalise pipeline input for CLIP.

        Args:
            images: ``float[B, 3, H, W]``, ``(rgb - IMAGENET_MEAN) / IMAGENET_STD``.
        Returns:
            ``float[B, 3, H, W]``, ``(rgb - image_mean) / image_std``.
        """
        return images * self.input_scale.to(images.dtype) + self.input_shift.to(images.dtype)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Compute the pyramid.

        Args:
            images: ``float[B, 3, H, W]`` ImageNet-normalised images, any H and W; zero-padded
                (right/bottom) to a multiple of 32 and of the patch size.
        Returns:
            Four tensors ``float[B, out_channels[l], ceil(H/32)*32/s_l, ceil(W/32)*32/s_l]`` for
            s = 4, 8, 16, 32.
        """
        batch, _, height, width = images.shape
        padded_h, padded_w = vit_padded_size(height, width, patch_size=self.patch_size)
        images = F.pad(images, (0, padded_w - width, 0, padded_h - height))
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            out = self.model(pixel_values=self.to_clip_input(images), interpolate_pos_encoding=True)
            tokens = self.model.post_layernorm(out.last_hidden_state[:, 1:])  # [B, N, C]
        grid_h, grid_w = padded_h // self.patch_size, padded_w // self.patch_size
        feature_map = tokens.transpose(1, 2).reshape(batch, -1, grid_h, grid_w)
        if self.patch_size != VIT_STRIDE:
            stride16 = (round_up(height, 32) // VIT_STRIDE, round_up(width, 32) // VIT_STRIDE)
            feature_map = to_stride16(feature_map, patch_size=self.patch_size, grid=stride16)
        return self.pyramid([feature_map])

    def _register_input_conversion(
        self, *, image_mean: Sequence[float], image_std: Sequence[float]
    ) -> None:
        """Buffers of the affine map from ImageNet- to CLIP-normalised input (not saved: they
        follow from the constructor arguments)."""
        mean = [float(v) for v in image_mean]
        std = [float(v) for v in image_std]
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(
                f"backbone clip: image_mean and image_std must be 3 values each (std > 0), got "
                f"{mean} and {std}"
            )
        self.image_mean, self.image_std = mean, std
        # (x * s_in + m_in - m) / s = x * (s_in / s) + (m_in - m) / s
        scale = [s_in / s for s_in, s in zip(IMAGENET_STD, std)]
        shift = [(m_in - m) / s for m_in, m, s in zip(IMAGENET_MEAN, mean, std)]
        self.register_buffer("input_scale", torch.tensor(scale).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_shift", torch.tensor(shift).view(1, 3, 1, 1), persistent=False)


def portable_clip_config(config: CLIPVisionConfig) -> dict[str, Any]:
    """The ViT's config as a plain mapping that ``config=`` rebuilds (no file references)."""
    fields = config.to_dict()
    for key in ("_name_or_path", "transformers_version", "architectures"):
        fields.pop(key, None)
    return fields


def _vision_config(config: CLIPVisionConfig | Mapping[str, Any]) -> CLIPVisionConfig:
    """A copy of ``config`` as a ``CLIPVisionConfig`` (of a whole CLIP config: its vision part)."""
    if isinstance(config, CLIPVisionConfig):
        return copy.deepcopy(config)
    if not isinstance(config, Mapping):
        raise ValueError(
            f"backbone clip: config must be a CLIPVisionConfig or a mapping of its fields, got "
            f"{type(config).__name__}"
        )
    fields = dict(config)
    model_type = fields.pop("model_type", CLIPVisionConfig.model_type)
    if model_type == "clip":
        fields = dict(fields.get("vision_config") or {})
        fields.pop("model_type", None)
    elif model_type != CLIPVisionConfig.model_type:
        raise ValueError(
            f"backbone clip: config has model_type {model_type!r}; expected "
            f"{CLIPVisionConfig.model_type!r} (or 'clip' with a vision_config). For other "
            "transformers backbones use model.backbone=hf."
        )
    return CLIPVisionConfig.from_dict(fields)


def _load_pretrained(name_or_path: str, local_files_only: bool) -> CLIPVisionModel:
    """``CLIPVisionModel.from_pretrained`` with one clear error when the weights are not there."""
    folder = Path(name_or_path).expanduser()
    if not folder.exists() and name_or_path.startswith(("/", ".", "~")):
        raise FileNotFoundError(
            f"CLIP image-encoder folder {name_or_path!r} does not exist; give the folder that "
            "save_pretrained wrote (model.backbone_kwargs.name_or_path)."
        )
    try:
        with _quiet_loading():
            model, info = CLIPVisionModel.from_pretrained(
                name_or_path, local_files_only=local_files_only, output_loading_info=True
            )
    except OSError as error:
        raise FileNotFoundError(
            f"Cannot load CLIP image-encoder weights from {name_or_path!r}. Give "
            "model.backbone_kwargs.name_or_path=FOLDER (written by save_pretrained, e.g. "
            "`CLIPModel.from_pretrained('openai/clip-vit-base-patch16').save_pretrained(FOLDER)` "
            "where there is network), or a hub id already in the local cache; to download it, set "
            f"model.backbone_kwargs.local_files_only=false (now {local_files_only}). "
            f"Details: {error}"
        ) from None
    missing = sorted(info.get("missing_keys") or []) + sorted(
        str(k) for k in info.get("mismatched_keys") or []
    )
    if missing:
        raise ValueError(
            f"{name_or_path!r} does not hold a whole CLIP image encoder: {len(missing)} of its "
            f"tensors are missing or of another shape (first: {missing[:3]}). Give a folder of a "
            "CLIPModel or CLIPVisionModel checkpoint."
        )
    logger.info("Loaded the CLIP image encoder from %s", name_or_path)
    return model


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """No progress bars and no load report listing the text half of a whole CLIP checkpoint."""
    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
