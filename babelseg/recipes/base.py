"""What every recipe provides to the trainer, the evaluator and the predictor: :class:`Recipe`.

A recipe is an ``nn.Module`` holding the network and its recipe-specific parameters, a subclass
of :class:`Recipe` (an ABC in the manner of detectron2's ``HookBase``): it must implement
``forward``, ``semantic_logits``, ``loss`` and ``loss_counts``; every other hook has a default
(identity or no-op) and the trainer, evaluator and predictor call them unconditionally, so a
misspelt override is an error of its own (no silent probing). Class attributes say what a recipe
is: ``name``, ``supported_annotations``, ``predicts_segments`` (panoptic segments and instances
besides per-pixel classes), ``forward_takes_texts``, ``forward_takes_datasets`` and
``find_unused_parameters``; :func:`forward_kwargs` is how callers honour the two ``forward_*``.

Every recipe module also has a builder, ``build_<name>_recipe(section, *, context)``, that takes
its own typed config section and the :class:`RecipeContext` (label spaces, texts and the shared
settings), never the whole run config; :mod:`babelseg.recipes.catalog` lists them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from babelseg.data.collate import Batch
from babelseg.data.sample import Annotation
from babelseg.data.targets import TargetSpec
from babelseg.labels.encoders.base import TextEncoder
from babelseg.labels.space import IGNORE_INDEX, LabelSpace
from babelseg.losses.pixel_text import pixel_cross_entropy_sum
from babelseg.models.builders import build_pixel_model
from babelseg.models.config import ModelConfig
from babelseg.models.pixel_model import PixelEmbeddingModel
from babelseg.models.segments import InstancePrediction, PanopticPrediction


@dataclass
class LossResult:
    """A training loss and what to log about it.

    Attributes:
        total: 0-d loss to back-propagate.
        per_dataset: ``{dataset: 0-d loss}`` (detached), to name the culprit of a NaN.
        logs: Extra scalars for the run log (0-d tensors are read back only on log steps).
    """

    total: torch.Tensor
    per_dataset: dict[str, torch.Tensor] = field(default_factory=dict)
    logs: dict[str, float | torch.Tensor] = field(default_factory=dict)


@dataclass
class RecipeContext:
    """What a recipe builder knows besides its own config section.

    Attributes:
        label_spaces: Every declared dataset's label space, by name.
        texts: ``{dataset: float[K_d, D]}`` frozen text embeddings (text mode applied).
        label_texts: ``{dataset: [K_d strings]}``, the strings that were encoded (prompt
            learning re-encodes them).
        train_datasets: The datasets being trained on, in sampler order.
        embed_dim: D.
        model: The ``model:`` section (network architecture).
        total_steps: ``train.steps`` (recipes with phases schedule by it).
        device: ``train.device`` (where encoders that recipes build run).
        temperature: ``recipe.temperature``, the initial tau of the text classifiers.
        learn_temperature: ``recipe.learn_temperature``.
        text_encoder: Builds the configured text encoder (prompt learners read through it);
            None when the run has none.
        sampling: ``data.sampling``: ``mixed`` or ``per_dataset`` (one dataset per step;
            per-dataset learning rates need it).
    """

    label_spaces: dict[str, LabelSpace]
    texts: dict[str, torch.Tensor]
    label_texts: dict[str, list[str]]
    train_datasets: list[str]
    embed_dim: int
    model: ModelConfig = field(default_factory=ModelConfig)
    total_steps: int = 0
    device: str = "cpu"
    temperature: float = 0.07
    learn_temperature: bool = True
    text_encoder: Callable[[], TextEncoder] | None = None
    sampling: str = "mixed"

    def build_text_encoder(self, purpose: str) -> TextEncoder:
        """The run's text encoder; ``purpose`` names the setting that needs it in the error."""
        if self.text_encoder is None:
            raise ValueError(f"{purpose} needs the run's text encoder (labels.encoder).")
        return self.text_encoder()


def pixel_network(context: RecipeContext) -> PixelEmbeddingModel:
    """The pixel-embedding network of ``context.model`` with embedding dim ``context.embed_dim``
    (the network of every pixel recipe)."""
    m = context.model
    return build_pixel_model(
        backbone=m.backbone,
        backbone_kwargs=dict(m.backbone_kwargs),
        decoder_dim=m.decoder_dim,
        embed_dim=context.embed_dim,
        weights=m.weights,
    )


class Recipe(nn.Module, ABC):
    """The contract between a recipe and the trainer, evaluator and predictor.

    Class attributes:
        name: The recipe's catalog name.
        supported_annotations: Annotation kinds it trains on.
        predicts_segments: True when :meth:`panoptic` and :meth:`instances` answer (mask
            classification); False: per-pixel classes only.
        forward_takes_texts: ``forward(images, texts=[float[K_b, D] per image])``: the trainer
            and predictor pass each image's label-space embeddings.
        forward_takes_datasets: ``forward(images, datasets=[name or None per image])``: each
            image's training dataset (None: a vocabulary of no training dataset), for
            dataset-specific modules (may be an instance attribute: a setting of the recipe).
        find_unused_parameters: Under torchrun some parameters get no gradient in some steps
            (phases that freeze part of the model): DistributedDataParallel must look for them.
        has_unified_space: True when :meth:`unified_space` answers (a learned label space).
        target_spec: The training targets collation builds for it in the data workers
            (:class:`~babelseg.data.targets.TargetSpec`); None: none beyond the semantic maps.
    """

    renamed_weights: ClassVar[dict[str, str]] = {}
    """``{old name: new name}`` of weights renamed since checkpoints were written with the old
    name; loading such a checkpoint maps them."""

    name: ClassVar[str] = "recipe"
    supported_annotations: ClassVar[frozenset[Annotation]] = frozenset()
    predicts_segments: ClassVar[bool] = False
    forward_takes_texts: ClassVar[bool] = False
    forward_takes_datasets: bool = False
    find_unused_parameters: ClassVar[bool] = False
    has_unified_space: ClassVar[bool] = False
    target_spec: ClassVar[TargetSpec | None] = None

    def __init__(self) -> None:
        super().__init__()
        self.reduce_sum: Callable[[torch.Tensor], torch.Tensor] = _local_sum

    # ------------------------------------------------------------------ required
    @abstractmethod
    def forward(self, images: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        """``images float[B, 3, H, W]`` (+ ``texts`` when ``forward_takes_texts``) -> the
        recipe's output (a :class:`~babelseg.models.outputs.PixelOutput` or ``MaskOutput``)."""

    @abstractmethod
    def semantic_logits(
        self,
        output: Any,
        text_embeddings: torch.Tensor,
        *,
        dataset: str | None = None,
        pixel_major: bool = False,
    ) -> torch.Tensor:
        """Class scores ``float[B, K, h, w]`` (``[B, h, w, K]`` when ``pixel_major``) at the
        output's resolution for the vocabulary ``text_embeddings float[K, D]``; ``dataset``
        names the training dataset whose label space it is, when it is one (per-dataset
        classifiers or mappings use it; None = any vocabulary)."""

    @abstractmethod
    def loss(
        self,
        output: Any,
        batch: Batch,
        texts: Mapping[str, torch.Tensor],
        *,
        normalisers: Mapping[str, torch.Tensor | float],
    ) -> LossResult:
        """The training loss of a batch; ``texts {dataset: float[K_d, D]}`` are
        :meth:`step_texts`, ``normalisers`` the all-reduced :meth:`loss_counts` / world size."""

    @abstractmethod
    def loss_counts(self, batch: Batch) -> dict[str, float]:
        """This process's normaliser counts (the trainer all-reduces them)."""

    # ------------------------------------------------------------------ hooks with defaults
    def step_texts(
        self, texts: Mapping[str, torch.Tensor], *, datasets: Collection[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """The label embeddings this step's loss uses (learned prompts give differentiable
        ones); the trainer also stores them with every checkpoint. ``datasets``: those of this
        step's batch (None: every one in ``texts`` may be used); a recipe may recompute only
        theirs and return the others as given. Default: ``texts``."""
        return dict(texts)

    def vocabulary_embeddings(self, strings: list[str], base: torch.Tensor) -> torch.Tensor:
        """``float[K, D]`` embeddings of a new vocabulary at inference (``base``: the frozen
        encoder's). Default: ``base``."""
        return base

    def lr_multiplier(self, datasets: Sequence[str]) -> float:
        """Factor on every parameter group's learning rate for the optimizer step of a batch
        whose images come from ``datasets`` (one name per image). Default: 1."""
        return 1.0

    def on_step_start(self, step: int) -> None:
        """Before the forward pass of step ``step`` (from 0): phase switches. Default: none."""

    def on_step_end(self, step: int) -> None:
        """After the optimizer step: momentum updates, phase ends. Default: none."""

    def extra_state(self) -> dict:
        """JSON-safe state saved with checkpoints besides the weights. Default: none."""
        return {}

    def load_extra_state(self, state: Mapping) -> None:
        """Restore :meth:`extra_state` (an empty mapping: nothing saved). Default: nothing."""

    def use_reduction(self, reduce_sum: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """The trainer hands over its in-place sum over processes (identity in one process),
        for recipes that pool statistics across processes."""
        self.reduce_sum = reduce_sum

    def panoptic(
        self,
        output: Any,
        text_embeddings: torch.Tensor,
        *,
        is_thing: torch.Tensor,
        dataset: str | None = None,
        sizes: Sequence[tuple[int, int]],
    ) -> list[PanopticPrediction]:
        """Panoptic segments per image at ``sizes`` (``predicts_segments`` recipes)."""
        raise ValueError(self._no_segments())

    def instances(
        self,
        output: Any,
        text_embeddings: torch.Tensor,
        *,
        dataset: str | None = None,
        sizes: Sequence[tuple[int, int]],
    ) -> list[InstancePrediction]:
        """Scored instance masks per image at ``sizes`` (``predicts_segments`` recipes)."""
        raise ValueError(self._no_segments())

    def unified_space(self) -> LabelSpace:
        """The learned unified label space of a recipe that has one (``autounify``)."""
        raise ValueError(
            f"Recipe '{self.name}' has no unified label space (autounify has); use --dataset or "
            "--labels."
        )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        for old, new in self.renamed_weights.items():
            if prefix + old in state_dict and prefix + new not in state_dict:
                state_dict[prefix + new] = state_dict.pop(prefix + old)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _no_segments(self) -> str:
        return (
            f"Recipe '{self.name}' predicts per-pixel classes only; panoptic segments and "
            "instances need a mask-classification recipe (lmseg, dataseg)."
        )


def forward_kwargs(
    recipe: Recipe, *, texts: Sequence[torch.Tensor], datasets: Sequence[str | None]
) -> dict[str, list]:
    """The keyword arguments of ``recipe.forward`` besides the images: ``texts`` (one
    ``float[K_b, D]`` per image) when ``forward_takes_texts``, ``datasets`` (each image's
    training dataset or None) when ``forward_takes_datasets``."""
    kwargs: dict[str, list] = {}
    if recipe.forward_takes_texts:
        kwargs["texts"] = list(texts)
    if recipe.forward_takes_datasets:
        kwargs["datasets"] = list(datasets)
    return kwargs


def _local_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum over one process: the tensor itself."""
    return tensor


def pixel_count(batch) -> dict[str, float]:
    """``{"pixels": M}``: this process's labelled pixels (the usual ``loss_counts``)."""
    pixels = 0 if batch.semantic is None else int((batch.semantic != IGNORE_INDEX).sum())
    return {"pixels": float(pixels)}


def group_by_dataset(datasets: list[str]) -> dict[str, list[int]]:
    """``["a", "b", "a"] -> {"a": [0, 2], "b": [1]}`` (first-seen order)."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(datasets):
        groups.setdefault(name, []).append(i)
    return groups


def check_annotations(
    recipe: str, supported: set[Annotation], wanted: Mapping[str, Annotation]
) -> None:
    """Raise ValueError when a dataset's annotation kind is not trainable by ``recipe``."""
    bad = {n: a.value for n, a in wanted.items() if a not in supported}
    if bad:
        raise ValueError(
            f"Recipe '{recipe}' cannot train on {bad}: it supports annotation kinds "
            f"{sorted(a.value for a in supported)}. Remove those datasets from data.train."
        )


def per_dataset_cross_entropy(
    batch_datasets: list[str],
    semantic: torch.Tensor,
    logits_of: Callable[[str, torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-pixel cross-entropy of every image in its own dataset's label space.

    Args:
        batch_datasets: Each image's dataset name (B).
        semantic: ``int64[B, H, W]`` targets, 255 = ignore.
        logits_of: ``(dataset, rows int64[b]) -> float[b, K_d, h, w]``, the logits of those
            images over that dataset's classes (raise ValueError for a dataset it cannot score).
    Returns:
        ``(loss summed over labelled pixels (0-d), {dataset: mean loss, detached})``.
    """
    total = semantic.new_zeros((), dtype=torch.float32)
    per_dataset: dict[str, torch.Tensor] = {}
    for name, idx in group_by_dataset(batch_datasets).items():
        rows = torch.tensor(idx, device=semantic.device)
        part, count = pixel_cross_entropy_sum(logits_of(name, rows), semantic.index_select(0, rows))
        total = total + part
        per_dataset[name] = (part / count.clamp(min=1)).detach()
    return total, per_dataset
