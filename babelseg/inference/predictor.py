"""Predict any vocabulary with a trained checkpoint."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from babelseg.data.collate import normalize_image
from babelseg.engine import checkpoint as ckpt
from babelseg.engine.builders import build_recipe, build_text_encoder_from_config, embed_label_space
from babelseg.engine.config import Config, config_from_dict
from babelseg.labels.encoders.base import TextEncoder
from babelseg.labels.space import LabelSpace


def candidate_classes(logits: torch.Tensor, *, chunk: int = 1024) -> torch.Tensor:
    """Classes that can win some pixel after bilinear upsampling of ``logits``.

    Bilinear upsampling (``align_corners=False``, borders clamped) makes each output logit a
    convex combination of one 2x2 window of the border-replicated low-resolution map. So class k
    can win an output pixel only if its maximum over that window reaches the best class's
    minimum over it: an exact test, at the cost of two 2x2 poolings.

    Args:
        logits: ``float[K, h, w]``.
    Returns:
        ``int64[C]`` sorted indices of the candidate classes (C <= K).
    """
    k = logits.shape[0]

    def windows(part: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.pad(part[None].float(), (1, 1, 1, 1), mode="replicate")
        return F.max_pool2d(x, 2, stride=1)[0], -F.max_pool2d(-x, 2, stride=1)[0]

    best_min = None
    for start in range(0, k, chunk):
        _, low = windows(logits[start : start + chunk])
        m = low.max(dim=0).values
        best_min = m if best_min is None else torch.maximum(best_min, m)
    keep = []
    for start in range(0, k, chunk):
        high, _ = windows(logits[start : start + chunk])
        keep.append((high >= best_min).flatten(1).any(dim=1))
    return torch.nonzero(torch.cat(keep)).flatten()


def labels_at_full_resolution(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Arg-max labels at ``size`` from low-resolution logits, for any vocabulary size.

    Equal to ``interpolate(logits, size, bilinear).argmax(0)``, but only the candidate classes
    (see :func:`candidate_classes`) are upsampled, so a 10,000-label vocabulary costs about what
    a small one costs after the low-resolution matmul.

    Args:
        logits: ``float[K, h, w]``.
        size: ``(H, W)`` output size.
    Returns:
        ``int64[H, W]`` class indices into the K classes.
    """
    candidates = candidate_classes(logits) if logits.shape[0] > 8 else None
    chosen = logits if candidates is None else logits[candidates]
    up = F.interpolate(chosen[None].float(), size=size, mode="bilinear", align_corners=False)[0]
    best = up.argmax(0)
    return best if candidates is None else candidates[best]


class Predictor:
    """A trained model plus the text embeddings of every vocabulary asked so far.

    Args:
        recipe: The trained recipe module (``forward`` and ``semantic_logits``).
        cfg: Its run config (text mode, encoder).
        label_spaces: The label spaces known from training, by dataset name.
        texts: Their stored text embeddings ``{dataset: float[K, D]}`` (no encoder needed).
        heldout: ``{dataset: bool}``.
        device: Where to run.
    """

    def __init__(
        self,
        *,
        recipe: torch.nn.Module,
        cfg: Config,
        label_spaces: dict[str, LabelSpace],
        texts: dict[str, torch.Tensor],
        heldout: dict[str, bool] | None = None,
        device: str = "cpu",
    ) -> None:
        self.recipe = recipe.eval().to(device)
        self.cfg = cfg
        self.label_spaces = label_spaces
        self.texts = texts
        self.heldout = heldout or {}
        self.device = torch.device(device)
        self._encoder: TextEncoder | None = None
        self._vocab_cache: OrderedDict[tuple[str, ...], torch.Tensor] = OrderedDict()

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, device: str = "cpu") -> Predictor:
        """Load from a run directory (latest checkpoint), a checkpoint folder or its parent run."""
        ckpt_dir, state = ckpt.read_checkpoint_state(Path(path))
        cfg = config_from_dict(state["config"])
        recipe = build_recipe(cfg, embed_dim=int(state["embed_dim"]))
        extra = ckpt.load_checkpoint(ckpt_dir, model=recipe, restore_rng=False).extra_tensors
        spaces = {
            n: LabelSpace.from_dict(d, name=n) for n, d in state.get("label_spaces", {}).items()
        }
        texts = {k.split("/", 1)[1]: v for k, v in extra.items() if k.startswith("text/")}
        return cls(
            recipe=recipe,
            cfg=cfg,
            label_spaces=spaces,
            texts=texts,
            heldout=state.get("heldout", {}),
            device=device,
        )

    # ------------------------------------------------------------------ vocabularies
    @property
    def encoder(self) -> TextEncoder:
        if self._encoder is None:
            self._encoder = build_text_encoder_from_config(self.cfg.labels)
        return self._encoder

    def dataset_vocabulary(self, name: str) -> tuple[LabelSpace, torch.Tensor]:
        """The label space of a dataset seen at training time and its stored embeddings."""
        if name not in self.label_spaces:
            raise ValueError(
                f"Unknown dataset '{name}'; this checkpoint knows {sorted(self.label_spaces)}. "
                "Use --labels to ask for any other vocabulary."
            )
        return self.label_spaces[name], self.texts[name]

    def vocabulary(self, space: LabelSpace) -> torch.Tensor:
        """Text embeddings ``float[K, D]`` of any label space, cached in memory and on disk."""
        key = tuple(f"{c.name}\x00{c.description or ''}" for c in space.classes) + (
            f"\x01{space.name}",
        )
        if key in self._vocab_cache:
            self._vocab_cache.move_to_end(key)
            return self._vocab_cache[key]
        emb = embed_label_space(space, self.encoder, self.cfg.labels, dataset=space.name)
        self._vocab_cache[key] = emb
        while len(self._vocab_cache) > 16:
            self._vocab_cache.popitem(last=False)
        return emb

    def space_from_names(self, names: Sequence[str]) -> LabelSpace:
        """A label space from user labels (``"name"`` or ``"name: description"``)."""
        return LabelSpace.from_names([n for n in names if n.strip()], name="custom")

    # ------------------------------------------------------------------ prediction
    @torch.inference_mode()
    def logits(self, image: np.ndarray, text_embeddings: torch.Tensor) -> torch.Tensor:
        """Low-resolution class logits of one image.

        Args:
            image: ``uint8[H, W, 3]`` RGB.
            text_embeddings: ``float[K, D]``.
        Returns:
            ``float[K, ceil(H/4), ceil(W/4)]``.
        """
        x = normalize_image(image).unsqueeze(0).to(self.device)
        out = self.recipe(x)
        return self.recipe.semantic_logits(out, text_embeddings.to(self.device))[0]

    @torch.inference_mode()
    def predict(self, image: np.ndarray, text_embeddings: torch.Tensor) -> np.ndarray:
        """Class indices ``int64[H, W]`` (into the vocabulary's classes) for one RGB image."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"Expected a uint8 RGB image [H, W, 3], got {image.dtype}{image.shape}."
            )
        logits = self.logits(image, text_embeddings)
        return labels_at_full_resolution(logits, image.shape[:2]).cpu().numpy()
