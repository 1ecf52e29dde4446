"""CLIP's vision tower as the box teacher of L_WD (SentenceLabels.txt section 3, Figure 5).

Each box is cropped from the image, resized to the model's input size and normalised with CLIP's
mean and standard deviation; the L2-normalised ``image_embeds`` of
``transformers.CLIPVisionModelWithProjection`` are the targets the pooled box embeddings are
distilled towards (``babelseg.losses.box_distillation``).

Preprocessing differs from ``CLIPImageProcessor`` on purpose: a box crop is resized to the square
input directly (the paper's "crop and resize"; no shortest-side resize + centre crop, which would
cut the ends off elongated boxes), with antialiased bicubic interpolation, on the teacher's device.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from babelseg.labels.encoders.clip import clip_encoder_id
from babelseg.labels.encoders.minilm import quiet_hf_loading

if TYPE_CHECKING:
    from transformers import CLIPVisionModelWithProjection


@contextlib.contextmanager
def _quiet_load() -> Iterator[None]:
    """No progress bars and no load report (the unused text half of a full CLIP checkpoint)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with quiet_hf_loading():
            yield
    finally:
        hf_logging.set_verbosity(level)


def _mean_std(folder: Path | None) -> tuple[list[float], list[float]]:
    """``image_mean`` / ``image_std`` of ``preprocessor_config.json`` when the folder has one, else
    the standard OpenAI CLIP values."""
    from transformers.utils.constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    mean, std = list(OPENAI_CLIP_MEAN), list(OPENAI_CLIP_STD)
    if folder is not None and (folder / "preprocessor_config.json").is_file():
        path = folder / "preprocessor_config.json"
        try:
            cfg = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e}); fix or delete it.") from e
        mean = [float(v) for v in cfg.get("image_mean", mean)]
        std = [float(v) for v in cfg.get("image_std", std)]
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(
            f"CLIP image_mean/image_std must be 3 values each (std > 0), got {mean} and {std}."
        )
    return mean, std


class ClipVisionTeacher:
    """Embeds box crops with a CLIP vision tower (frozen, eval mode).

    Give exactly one of ``name_or_path`` and ``model``.

    Args:
        name_or_path: A folder written by ``save_pretrained`` (a vision model or a full CLIP
            model; only its vision half and projection are loaded), or a hub name such as
            ``openai/clip-vit-base-patch32`` (needs ``local_files_only=False`` unless cached).
        model: An already built ``CLIPVisionModelWithProjection``.
        processor_size: Side of the square crops fed to the model; None uses the model's
            ``config.image_size`` (224 for the standard CLIP ViTs). Another size interpolates
            the position embeddings.
        device: Torch device the model runs on.
        local_files_only: Never use the network (the default).
        batch_size: Crops per forward pass.

    Attributes:
        id: ``"<clip encoder id>-vision"`` for a loaded checkpoint, ``"clip-vision-model"`` for
            a passed-in model.
        dim: The projection dimension P of the embeddings.
        image_size: The crop side actually used.
        image_mean: RGB mean (0..1 scale): the folder's ``preprocessor_config.json`` when present,
            else OpenAI CLIP's.
        image_std: RGB standard deviation, likewise.
        model: The ``CLIPVisionModelWithProjection``.

    Raises:
        ValueError: neither or both of ``name_or_path`` and ``model``; a bad size.
        FileNotFoundError: the folder does not exist or holds no CLIP vision weights.
    """

    def __init__(
        self,
        name_or_path: str | None = None,
        *,
        model: CLIPVisionModelWithProjection | None = None,
        processor_size: int | None = None,
        device: str | torch.device = "cpu",
        local_files_only: bool = True,
        batch_size: int = 64,
    ) -> None:
        if (name_or_path is None) == (model is None):
            raise ValueError(
                "ClipVisionTeacher needs exactly one of name_or_path (a folder written by "
                "save_pretrained, or a hub name) and model (a CLIPVisionModelWithProjection)."
            )
        folder: Path | None = None
        if model is None:
            model, folder = self._load(str(name_or_path), local_files_only=local_files_only)
            self.id = f"{clip_encoder_id(str(folder or name_or_path))}-vision"
        else:
            self.id = "clip-vision-model"
        if int(batch_size) < 1:
            raise ValueError(f"ClipVisionTeacher batch_size must be >= 1, got {batch_size}.")
        self.model = model.to(device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        config = self.model.config
        self.dim = int(config.projection_dim)
        self.image_size = int(processor_size or config.image_size)
        if self.image_size < int(config.patch_size):
            raise ValueError(
                f"processor_size {self.image_size} is smaller than the model's patch size "
                f"{config.patch_size}; use the model's image_size ({config.image_size})."
            )
        self.image_mean, self.image_std = _mean_std(folder)
        self.batch_size = int(batch_size)

    @staticmethod
    def _load(
        name_or_path: str, *, local_files_only: bool
    ) -> tuple[CLIPVisionModelWithProjection, Path | None]:
        from transformers import CLIPVisionModelWithProjection

        path = Path(name_or_path).expanduser()
        local = path.exists() or name_or_path.startswith((".", "/", "~"))
        if local and not path.is_dir():
            raise FileNotFoundError(
                f"CLIP model folder not found: {path}. Give a folder written by save_pretrained "
                "(config.json and weights)."
            )
        source = str(path) if local else name_or_path
        try:
            with _quiet_load():
                model, info = CLIPVisionModelWithProjection.from_pretrained(
                    source, local_files_only=local_files_only, output_loading_info=True
                )
        except (OSError, ValueError) as e:
            hint = (
                " It is not on this machine: pass local_files_only=False to download it."
                if local_files_only and not local
                else ""
            )
            raise FileNotFoundError(
                f"Could not load a CLIP vision model from '{source}': {e}.{hint}"
            ) from e
        missing = sorted(info.get("missing_keys", ()))
        if missing:
            raise FileNotFoundError(
                f"'{source}' holds no CLIP vision weights ({len(missing)} missing, e.g. "
                f"{missing[0]}); give a full CLIP or CLIP vision checkpoint."
            )
        return model, (path if local else None)

    def __repr__(self) -> str:
        return f"ClipVisionTeacher(id={self.id!r}, dim={self.dim}, image_size={self.image_size})"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def preprocess_crops(
        self, image: np.ndarray | torch.Tensor, boxes: np.ndarray | torch.Tensor
    ) -> torch.Tensor:
        """Crop, resize and normalise the boxes of one image.

        A box is clipped to the image and widened to whole pixels (``floor(x0) .. ceil(x1)``);
        one thinner than a pixel still yields a crop of at least 1 x 1 pixel, so every box has
        a row (the distillation skips such boxes itself).

        Args:
            image: ``uint8[H, W, 3]`` RGB.
            boxes: ``float[N, 4]`` ``(x0, y0, x1, y1)`` in pixels.
        Returns:
            ``float32[N, 3, S, S]`` model inputs on the teacher's device (``S = image_size``).
        """
        if torch.is_tensor(image):
            img = image.detach()
        else:  # np.require copies only read-only (e.g. PIL-backed) or non-contiguous arrays
            img = torch.from_numpy(np.require(image, requirements=["C", "W"]))
        if img.dim() != 3 or img.shape[2] != 3:
            raise ValueError(f"Expected an RGB image [H, W, 3], got shape {tuple(img.shape)}.")
        height, width = int(img.shape[0]), int(img.shape[1])
        img = img.to(self.device).permute(2, 0, 1).float()  # [3, H, W], 0..255
        if torch.is_tensor(boxes):
            bx = boxes.detach().double().cpu().reshape(-1, 4)
        else:
            bx = torch.from_numpy(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
        mean = torch.tensor(self.image_mean, device=img.device).view(3, 1, 1)
        std = torch.tensor(self.image_std, device=img.device).view(3, 1, 1)
        size = (self.image_size, self.image_size)
        crops = []
        for x0, y0, x1, y1 in bx.tolist():
            c0 = min(max(math.floor(x0), 0), width - 1)
            r0 = min(max(math.floor(y0), 0), height - 1)
            c1 = max(min(math.ceil(x1), width), c0 + 1)
            r1 = max(min(math.ceil(y1), height), r0 + 1)
            crop = img[None, :, r0:r1, c0:c1]
            if crop.shape[-2:] != size:
                crop = F.interpolate(
                    crop, size=size, mode="bicubic", align_corners=False, antialias=True
                )
            crops.append(((crop[0].clamp(0.0, 255.0) / 255.0) - mean) / std)
        if not crops:
            return torch.zeros((0, 3, *size), device=img.device)
        return torch.stack(crops)

    def embed_crops(
        self, image: np.ndarray | torch.Tensor, boxes: np.ndarray | torch.Tensor
    ) -> torch.Tensor:
        """CLIP image embeddings of the box crops of one image (the L_WD targets).

        Args:
            image: ``uint8[H, W, 3]`` RGB (e.g. ``Sample.image`` after augmentation, whose
                ``Sample.boxes`` are in the same pixels).
            boxes: ``float[N, 4]`` ``(x0, y0, x1, y1)`` in pixels.
        Returns:
            ``float32[N, P]`` rows of unit L2 norm, on the teacher's device, without gradient.
        """
        pixels = self.preprocess_crops(image, boxes)
        interpolate = self.image_size != int(self.model.config.image_size)
        dtype = next(self.model.parameters()).dtype
        out = []
        with torch.no_grad():
            for start in range(0, pixels.shape[0], self.batch_size):
                chunk = pixels[start : start + self.batch_size].to(dtype)
                emb = self.model(pixel_values=chunk, interpolate_pos_encoding=interpolate)
                out.append(F.normalize(emb.image_embeds.float(), dim=-1))
        if not out:
            return torch.zeros((0, self.dim), device=pixels.device)
        return torch.cat(out)
