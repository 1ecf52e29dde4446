"""What every recipe provides to the trainer, the evaluator and the predictor.

A recipe is an ``nn.Module`` holding the network and its recipe-specific parameters. Required:

- ``name: str`` and ``supported_annotations: set[Annotation]``;
- ``forward(images float[B, 3, H, W]) -> PixelOutput | MaskOutput``;
- ``semantic_logits(output, text float[K, D], *, dataset: str | None = None, pixel_major=False)``
  -> ``float[B, K, h, w]`` scores (``[B, h, w, K]`` when ``pixel_major``) at the output's
  resolution; ``dataset`` names the training dataset whose label space ``text`` is, when it is one
  (recipes with per-dataset classifiers or mappings use it; None = any vocabulary);
- ``loss(output, batch, texts {dataset: float[K_d, D]}, *, normalisers) -> LossResult``;
- ``forward_takes_texts = True`` (class attribute, optional): ``forward(images, texts=[float[K_b,
  D] per image])``; the trainer and predictor then pass each image's label-space embeddings;
- ``find_unused_parameters = True`` (class attribute, optional): under torchrun, some
  parameters get no gradient in some steps (phases that freeze part of the model); the trainer
  tells DistributedDataParallel to look for them;
- ``loss_counts(batch) -> {name: float}``: this process's normaliser counts (the trainer
  all-reduces them and passes them back as ``normalisers``).

Optional hooks (the trainer, evaluator and predictor call them when present):

- ``step_texts(texts) -> texts``: the label embeddings this step's loss uses (learned prompts
  give differentiable ones); the trainer stores ``step_texts`` of every dataset (no grad) in each
  checkpoint, so inference needs no text-encoder pass for known label spaces;
- ``vocabulary_embeddings(strings: list[str], base float[K, D]) -> float[K, D]``: embeddings of a
  new vocabulary at inference (``base`` = the frozen encoder's); default ``base``;
- ``on_step_start(step: int)`` / ``on_step_end(step: int)``: before the forward pass / after the
  optimizer step (phase switches, momentum updates; ``step`` counts from 0);
- ``panoptic(output, text, *, is_thing bool[K], dataset=None, sizes) -> list[PanopticPrediction]``
  and ``instances(output, text, *, dataset=None, sizes) -> list[InstancePrediction]`` for recipes
  that predict segments (``sizes``: the ``(H, W)`` to predict at, per image);
- ``extra_state() -> dict`` / ``load_extra_state(dict)``: JSON-safe state saved with checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from babelseg.data.sample import Annotation
from babelseg.labels.space import IGNORE_INDEX, LabelSpace
from babelseg.losses.pixel_text import pixel_cross_entropy_sum


@dataclass
class LossResult:
    """A training loss and what to log about it.

    Attributes:
        total: 0-d loss to back-propagate.
        per_dataset: ``{dataset: 0-d loss}`` (detached), to name the culprit of a NaN.
        logs: Extra scalars for the run log.
    """

    total: torch.Tensor
    per_dataset: dict[str, torch.Tensor] = field(default_factory=dict)
    logs: dict[str, float] = field(default_factory=dict)


@dataclass
class RecipeContext:
    """What a recipe builder knows besides the config.

    Attributes:
        label_spaces: Every declared dataset's label space, by name.
        texts: ``{dataset: float[K_d, D]}`` frozen text embeddings (text mode applied).
        label_texts: ``{dataset: [K_d strings]}``, the strings that were encoded (prompt
            learning re-encodes them).
        train_datasets: The datasets being trained on, in sampler order.
        embed_dim: D.
    """

    label_spaces: dict[str, LabelSpace]
    texts: dict[str, torch.Tensor]
    label_texts: dict[str, list[str]]
    train_datasets: list[str]
    embed_dim: int


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
