"""Predict any vocabulary with a trained checkpoint."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

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
from babelseg.inference.output_rows import output_rows, output_size
from babelseg.inference.score_bands import (  # noqa: F401  (re-exported)
    labels_at_full_resolution,
    labels_in_bands,
)
from babelseg.labels.encoders.base import TextEncoder
from babelseg.labels.space import LabelSpace
from babelseg.labels.texts import label_texts
from babelseg.models.segments import InstancePrediction, PanopticPrediction
from babelseg.recipes.base import Recipe, forward_kwargs

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
        memory_budget: Bytes of class scores held at once when labelling an image: the scores
            are computed in bands of rows (10,000 labels on a 6000 x 4000 image).
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
        memory_budget: int = 1 << 28,
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
        self.memory_budget = int(memory_budget)

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

    def _forward(self, image: np.ndarray, text: torch.Tensor, dataset: str | None):
        """The recipe on one image; ``text float[K, D]`` (already on the device) is passed to
        recipes whose forward takes texts (category-guided decoding), ``dataset`` (a training
        dataset or None) to those whose forward takes datasets (dataset-specific modules)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"Expected a uint8 RGB image [H, W, 3], got {image.dtype}{image.shape}."
            )
        x = normalize_image(image).unsqueeze(0).to(self.device)
        return self.recipe(x, **forward_kwargs(self.recipe, texts=[text], datasets=[dataset]))

    def _semantic_labels(
        self, out, text: torch.Tensor, size: tuple[int, int], dataset: str | None
    ) -> torch.Tensor:
        """``int64[H, W]`` labels, the scores computed in bands of rows whose memory stays
        within ``self.memory_budget`` bytes (10,000 labels on a 6000 x 4000 image)."""

        def scores_of_rows(r0: int, r1: int) -> torch.Tensor:
            rows = output_rows(out, r0, r1)
            return self.recipe.semantic_logits(rows, text, dataset=dataset, pixel_major=True)[0]

        return labels_in_bands(
            scores_of_rows,
            output_size(out),
            size,
            len(text),
            budget_bytes=self.memory_budget,
        )

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
        out = self._forward(image, text, dataset)
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
        out = self._forward(image, text, dataset)
        size = (int(image.shape[0]), int(image.shape[1]))
        result = TaskPredictions()
        if "semantic" in tasks:
            result.semantic = self._semantic_labels(out, text, size, dataset).cpu().numpy()
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
