"""Predict any vocabulary with a trained checkpoint."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from babelseg.data.collate import normalize_image
from babelseg.engine import checkpoint as ckpt
from babelseg.engine.builders import (
    build_recipe,
    build_text_encoder_from_config,
    embed_label_space,
    recipe_context,
)
from babelseg.engine.config import Config, config_from_dict
from babelseg.engine.portable_backbone import config_for_loading
from babelseg.labels.encoders.base import TextEncoder
from babelseg.labels.space import LabelSpace
from babelseg.labels.texts import label_texts
from babelseg.models.segments import InstancePrediction, PanopticPrediction
from babelseg.recipes.base import Recipe


def _bilinear_taps(n_in: int, n_out: int, device: torch.device):
    """Source indices and weights of ``interpolate(mode="bilinear", align_corners=False)``.

    Returns:
        ``(i0 int64[n_out], i1 int64[n_out], w1 float[n_out])``: output j reads
        ``(1 - w1) * x[i0] + w1 * x[i1]``.
    """
    src = ((torch.arange(n_out, device=device) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0.0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    return i0, i1, src - i0


def labels_at_full_resolution(
    logits: torch.Tensor,
    size: tuple[int, int],
    *,
    per_pixel: int = 4,
    full_below: int = 64,
    exact: bool = False,
) -> torch.Tensor:
    """Arg-max labels at ``size`` from low-resolution logits, for any vocabulary size.

    Up to ``full_below`` classes: ``interpolate(logits, size, bilinear).argmax``, exactly.
    Beyond: each output pixel is a convex combination of 4 low-resolution pixels, so only the
    classes in those pixels' top ``per_pixel`` lists are scored there; the result is certified
    equal to the full computation wherever the best score reaches the bound
    ``sum_i w_i * (per_pixel-th largest logit at pixel i)`` that no other class can beat.
    Where it does not (near-ties, e.g. near-synonyms in a huge vocabulary) the best candidate
    is kept, or, with ``exact=True``, the pixel is scored over all K classes (slow when ties
    are common). The cost after the low-resolution matmul barely grows with K.

    Args:
        logits: ``float[h, w, K]``, pixel-major (``semantic_logits(..., pixel_major=True)``).
        size: ``(H, W)`` output size.
        per_pixel: Classes kept per low-resolution pixel.
        full_below: Vocabulary size up to which all K maps are upsampled.
        exact: Score uncertified pixels over all classes.
    Returns:
        ``int64[H, W]`` class indices into the K classes.
    """
    logits = logits.float()
    h, w, k = logits.shape
    big_h, big_w = int(size[0]), int(size[1])
    if k <= max(full_below, 2 * per_pixel):
        maps = logits.permute(2, 0, 1)[None]
        up = F.interpolate(maps, size=(big_h, big_w), mode="bilinear", align_corners=False)
        return up[0].argmax(0)
    top_val, top_idx = logits.topk(per_pixel, dim=-1)  # [h, w, P], contiguous over classes
    top_val, top_idx = top_val.permute(2, 0, 1), top_idx.permute(2, 0, 1)  # [P, h, w]
    y0, y1, wy = _bilinear_taps(h, big_h, logits.device)
    x0, x1, wx = _bilinear_taps(w, big_w, logits.device)
    taps = [
        (y0[:, None], x0[None, :], (1 - wy)[:, None] * (1 - wx)[None, :]),
        (y0[:, None], x1[None, :], (1 - wy)[:, None] * wx[None, :]),
        (y1[:, None], x0[None, :], wy[:, None] * (1 - wx)[None, :]),
        (y1[:, None], x1[None, :], wy[:, None] * wx[None, :]),
    ]
    # candidates of each output pixel: the 4 neighbours' top lists -> [4P, H, W]
    cand = torch.cat([top_idx[:, ty, tx] for ty, tx, _ in taps], dim=0)
    score = torch.zeros(cand.shape, dtype=logits.dtype, device=logits.device)
    bound = torch.zeros((big_h, big_w), dtype=logits.dtype, device=logits.device)
    for ty, tx, tw in taps:
        score += tw * logits[ty.expand(big_h, big_w), tx.expand(big_h, big_w), cand]
        bound += tw * top_val[-1, ty, tx]
    best, where = score.max(dim=0)
    labels = cand.gather(0, where[None])[0]
    if not exact:
        return labels
    unsure = torch.nonzero(best < bound)
    chunk = max(1, (1 << 24) // k)  # ~64 MB of scores per chunk
    for start in range(0, len(unsure), chunk):
        ys, xs = unsure[start : start + chunk].unbind(1)
        full = sum(tw[ys, xs, None] * logits[ty[ys, 0], tx[0, xs]] for ty, tx, tw in taps)
        labels[ys, xs] = full.argmax(1)
    return labels


TASKS = ("semantic", "panoptic", "instances")
"""What :meth:`Predictor.predict_tasks` can predict."""


@dataclass
class TaskPredictions:
    """What one forward pass gave, per task asked (None for tasks not asked).

    Attributes:
        semantic: ``int64[H, W]`` class indices.
        panoptic: Panoptic segments at ``H x W``.
        instances: Scored instance masks at ``H x W``.
    """

    semantic: np.ndarray | None = None
    panoptic: PanopticPrediction | None = None
    instances: InstancePrediction | None = None


class Predictor:
    """A trained model plus the text embeddings of every vocabulary asked so far.

    Args:
        recipe: The trained recipe module (``forward`` and ``semantic_logits``).
        cfg: Its run config (text mode, encoder).
        label_spaces: The label spaces known from training, by dataset name.
        texts: Their stored text embeddings ``{dataset: float[K, D]}`` (no encoder needed).
        heldout: ``{dataset: bool}``.
        train_datasets: The datasets the checkpoint was trained on (their names are passed to
            the recipe as ``dataset=``, for per-dataset classifiers or mappings).
        device: Where to run.
    """

    def __init__(
        self,
        *,
        recipe: Recipe,
        cfg: Config,
        label_spaces: dict[str, LabelSpace],
        texts: dict[str, torch.Tensor],
        heldout: dict[str, bool] | None = None,
        train_datasets: Sequence[str] = (),
        device: str = "cpu",
    ) -> None:
        self.recipe = recipe.eval().to(device)
        self.cfg = cfg
        self.label_spaces = label_spaces
        self.texts = texts
        self.heldout = heldout or {}
        self.train_datasets = list(train_datasets)
        self.device = torch.device(device)
        self._encoder: TextEncoder | None = None
        self._vocab_cache: OrderedDict[tuple[str, ...], torch.Tensor] = OrderedDict()

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, device: str = "cpu") -> Predictor:
        """Load from a run directory (latest checkpoint), a checkpoint folder or its parent run."""
        ckpt_dir, state = ckpt.read_checkpoint_state(Path(path))
        cfg = config_from_dict(config_for_loading(state))
        spaces = {
            n: LabelSpace.from_dict(d, name=n) for n, d in state.get("label_spaces", {}).items()
        }
        texts = {
            k.split("/", 1)[1]: v
            for k, v in ckpt.load_extra_tensors(ckpt_dir).items()
            if k.startswith("text/")
        }
        train_datasets = list(state.get("train_datasets", []))
        context = recipe_context(cfg, spaces, texts, train_datasets)
        recipe = build_recipe(cfg, embed_dim=int(state["embed_dim"]), context=context)
        ckpt.load_checkpoint(ckpt_dir, model=recipe, restore_rng=False)
        recipe.load_extra_state(state.get("recipe_state", {}))
        return cls(
            recipe=recipe,
            cfg=cfg,
            label_spaces=spaces,
            texts=texts,
            heldout=state.get("heldout", {}),
            train_datasets=train_datasets,
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

    def unified_vocabulary(self) -> tuple[LabelSpace, torch.Tensor]:
        """The learned unified label space of a recipe that has one (``autounify``), and a
        placeholder ``float[N, D]`` text (such a recipe scores ``dataset="unified"`` without
        texts)."""
        space = self.recipe.unified_space()
        dim = next(iter(self.texts.values())).shape[1] if self.texts else 1
        return space, torch.zeros(len(space), dim)

    def vocabulary(self, space: LabelSpace) -> torch.Tensor:
        """Text embeddings ``float[K, D]`` of any label space, cached in memory and on disk."""
        key = tuple(f"{c.name}\x00{c.description or ''}" for c in space.classes) + (
            f"\x01{space.name}",
        )
        if key in self._vocab_cache:
            self._vocab_cache.move_to_end(key)
            return self._vocab_cache[key]
        emb = embed_label_space(space, self.encoder, self.cfg.labels, dataset=space.name)
        strings = label_texts(
            space,
            mode=self.cfg.labels.text_mode,
            template=self.cfg.labels.template,
            dataset=space.name,
        )
        with torch.no_grad():
            emb = self.recipe.vocabulary_embeddings(strings, emb.to(self.device)).cpu()
        self._vocab_cache[key] = emb
        while len(self._vocab_cache) > 16:
            self._vocab_cache.popitem(last=False)
        return emb

    def space_from_names(self, names: Sequence[str]) -> LabelSpace:
        """A label space from user labels (``"name"`` or ``"name: description"``)."""
        return LabelSpace.from_names([n for n in names if n.strip()], name="custom")

    # ------------------------------------------------------------------ prediction
    @property
    def predicts_segments(self) -> bool:
        """Whether the recipe predicts panoptic segments and instances (mask classification)."""
        return self.recipe.predicts_segments

    def known_dataset(self, name: str | None) -> str | None:
        """``name`` when the checkpoint was trained on it (per-dataset recipes use it), else
        None (any other vocabulary goes through the texts alone)."""
        return name if name is not None and name in self.train_datasets else None

    def _forward(self, image: np.ndarray, text: torch.Tensor):
        """The recipe on one image; ``text float[K, D]`` (already on the device) is passed to
        recipes whose forward takes texts (category-guided decoding)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"Expected a uint8 RGB image [H, W, 3], got {image.dtype}{image.shape}."
            )
        x = normalize_image(image).unsqueeze(0).to(self.device)
        if self.recipe.forward_takes_texts:
            return self.recipe(x, texts=[text])
        return self.recipe(x)

    @torch.inference_mode()
    def logits(
        self, image: np.ndarray, text_embeddings: torch.Tensor, *, dataset: str | None = None
    ) -> torch.Tensor:
        """Low-resolution class scores of one image.

        Args:
            image: ``uint8[H, W, 3]`` RGB.
            text_embeddings: ``float[K, D]``.
            dataset: The training dataset whose label space ``text_embeddings`` is, or None.
        Returns:
            ``float[ceil(H/4), ceil(W/4), K]`` (pixel-major).
        """
        text = text_embeddings.to(self.device)
        out = self._forward(image, text)
        return self.recipe.semantic_logits(out, text, dataset=dataset, pixel_major=True)[0]

    @torch.inference_mode()
    def predict(
        self, image: np.ndarray, text_embeddings: torch.Tensor, *, dataset: str | None = None
    ) -> np.ndarray:
        """Class indices ``int64[H, W]`` (into the vocabulary's classes) for one RGB image."""
        return self.predict_tasks(image, text_embeddings, dataset=dataset).semantic

    @torch.inference_mode()
    def predict_panoptic(
        self,
        image: np.ndarray,
        text_embeddings: torch.Tensor,
        is_thing: np.ndarray | Sequence[bool],
        *,
        dataset: str | None = None,
    ) -> PanopticPrediction:
        """Panoptic segments of one image at its full resolution.

        Args:
            image: ``uint8[H, W, 3]`` RGB.
            text_embeddings: ``float[K, D]``.
            is_thing: ``bool[K]``: which classes are things (instances) or stuff (merged).
            dataset: The training dataset whose label space it is, or None.
        Returns:
            :class:`PanopticPrediction` with ``segment_ids int32[H, W]``.
        """
        return self.predict_tasks(
            image, text_embeddings, tasks=("panoptic",), is_thing=is_thing, dataset=dataset
        ).panoptic

    @torch.inference_mode()
    def predict_instances(
        self, image: np.ndarray, text_embeddings: torch.Tensor, *, dataset: str | None = None
    ) -> InstancePrediction:
        """Scored instance masks ``bool[N, H, W]`` of one image at its full resolution."""
        return self.predict_tasks(
            image, text_embeddings, tasks=("instances",), dataset=dataset
        ).instances

    @torch.inference_mode()
    def predict_tasks(
        self,
        image: np.ndarray,
        text_embeddings: torch.Tensor,
        *,
        tasks: Sequence[str] = ("semantic",),
        is_thing: np.ndarray | Sequence[bool] | None = None,
        dataset: str | None = None,
    ) -> TaskPredictions:
        """Several tasks from ONE forward pass of one image, at its full resolution.

        Args:
            image: ``uint8[H, W, 3]`` RGB.
            text_embeddings: ``float[K, D]``.
            tasks: Any of ``"semantic"``, ``"panoptic"``, ``"instances"``.
            is_thing: ``bool[K]``, needed for ``"panoptic"``.
            dataset: The training dataset whose label space it is, or None.
        Raises:
            ValueError: an unknown task, panoptic without ``is_thing``, or segments asked of a
                recipe that does not predict them.
        """
        unknown = sorted(set(tasks) - set(TASKS))
        if unknown:
            raise ValueError(f"Unknown task(s) {unknown}; valid tasks: {list(TASKS)}.")
        if ("panoptic" in tasks or "instances" in tasks) and not self.predicts_segments:
            raise ValueError(
                f"Recipe '{self.recipe.name}' predicts per-pixel classes only; "
                "panoptic segments and instances need a mask-classification recipe "
                "(lmseg, dataseg)."
            )
        text = text_embeddings.to(self.device)
        out = self._forward(image, text)
        size = (int(image.shape[0]), int(image.shape[1]))
        result = TaskPredictions()
        if "semantic" in tasks:
            scores = self.recipe.semantic_logits(out, text, dataset=dataset, pixel_major=True)
            result.semantic = labels_at_full_resolution(scores[0], size).cpu().numpy()
        if "panoptic" in tasks:
            if is_thing is None:
                raise ValueError("Panoptic prediction needs is_thing (bool[K]) of the classes.")
            things = torch.as_tensor(np.asarray(is_thing, dtype=bool), device=self.device)
            if things.shape != (len(text),):
                raise ValueError(
                    f"is_thing has shape {tuple(things.shape)}; the vocabulary has {len(text)} "
                    "classes."
                )
            result.panoptic = self.recipe.panoptic(
                out, text, is_thing=things, dataset=dataset, sizes=[size]
            )[0]
        if "instances" in tasks:
            result.instances = self.recipe.instances(out, text, dataset=dataset, sizes=[size])[0]
        return result
