"""The ``union`` baseline: one-hot classes over the union of the training label spaces.

Identical class names (case- and whitespace-insensitive) are merged into one union class; every
other name is its own class, so synonyms ("person" / "pedestrian") stay apart and a coarse class
never shares a logit with the fine classes it covers. A 1x1 linear classifier on the pixel
embeddings scores every union class (no text is involved in training). Each image's loss is the
per-pixel cross-entropy over its own dataset's classes only: the logits of the other datasets'
classes are left out of its softmax, so a class that dataset does not annotate is never pushed
down by it (LMSeg.txt Table 2's "union label space" baseline with per-dataset partial softmax).

Prediction: a training dataset's vocabulary gets its own classes' logits. Any other vocabulary
(held-out datasets, user labels) is answered through text: each asked class takes the logit of
the union class of the training label whose text embedding (in the run's text mode) is nearest
to the asked class's text embedding (see :mod:`babelseg.recipes.label_matching`). Two asked
classes that land on the same union class get the same score; the first wins the arg-max.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from babelseg.data.collate import Batch
from babelseg.data.sample import Annotation
from babelseg.models.outputs import PixelOutput
from babelseg.models.pixel_model import PixelEmbeddingModel
from babelseg.recipes.base import (
    LossResult,
    Recipe,
    RecipeContext,
    per_dataset_cross_entropy,
    pixel_count,
    pixel_network,
)
from babelseg.recipes.label_matching import (
    check_training_context,
    matching_dataset,
    nearest_labels,
    split_rows,
    union_of_names,
)


def linear_logits(
    embeddings: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    pixel_major: bool = False,
) -> torch.Tensor:
    """A 1x1 linear classifier on pixel embeddings.

    Args:
        embeddings: ``float[B, D, h, w]``.
        weight: ``float[K, D]``.
        bias: ``float[K]``.
        pixel_major: Return ``[B, h, w, K]``.
    Returns:
        ``float[B, K, h, w]`` (or ``[B, h, w, K]``).
    """
    weight = weight.to(embeddings.dtype)
    if pixel_major:
        return torch.einsum("bdhw,kd->bhwk", embeddings, weight) + bias.to(embeddings.dtype)
    return (
        torch.einsum("bdhw,kd->bkhw", embeddings, weight) + bias.to(embeddings.dtype)[:, None, None]
    )


class UnionRecipe(Recipe):
    """Pixel-embedding body + one linear classifier over the merged union of class names.

    Args:
        model: The pixel-embedding network.
        embed_dim: Its embedding width ``D`` (the classifier's input).
        class_names: ``{dataset: [K_d class names]}`` of the training datasets, sampler order.
        label_embeddings: ``{dataset: float[K_d, E]}`` their text embeddings (run's text mode), used
            only to map unknown vocabularies at prediction time.
    """

    name = "union"
    supported_annotations = frozenset({Annotation.CLEAN, Annotation.NOISY})
    renamed_weights = {"label_texts": "label_embeddings"}  # before one name per concept

    def __init__(
        self,
        *,
        model: PixelEmbeddingModel,
        embed_dim: int,
        class_names: Mapping[str, Sequence[str]],
        label_embeddings: Mapping[str, torch.Tensor],
    ) -> None:
        super().__init__()
        if not class_names:
            raise ValueError("The union baseline needs at least one training dataset.")
        missing = [d for d in class_names if d not in label_embeddings]
        if missing:
            raise ValueError(f"No label texts for training dataset(s) {missing}.")
        self.model = model
        self.datasets = list(class_names)
        self.union_names, index = union_of_names(class_names)
        self.dataset_index = {d: torch.tensor(ids, dtype=torch.long) for d, ids in index.items()}
        self.classifier = nn.Conv2d(embed_dim, len(self.union_names), kernel_size=1)
        # the training labels' texts and their union class: the lookup of unknown vocabularies
        texts = torch.cat([label_embeddings[d].float() for d in self.datasets])
        self.register_buffer("label_embeddings", texts)
        self.register_buffer(
            "label_union", torch.cat([self.dataset_index[d] for d in self.datasets])
        )

    def forward(self, images: torch.Tensor) -> PixelOutput:
        """``images float[B, 3, H, W]`` -> ``PixelOutput(embeddings float[B, D, H/4, W/4])``."""
        return self.model(images)

    def union_logits(self, output: PixelOutput) -> torch.Tensor:
        """``float[B, U, H/4, W/4]``: scores of every union class."""
        return self.classifier(output.embeddings)

    def dataset_texts(self) -> dict[str, torch.Tensor]:
        """``{dataset: float[K_d, E]}`` the stored training texts."""
        sizes = [len(self.dataset_index[d]) for d in self.datasets]
        return split_rows(self.label_embeddings, sizes, self.datasets)

    def classes_for(self, text: torch.Tensor, dataset: str | None = None) -> torch.Tensor:
        """The union class that answers each asked class.

        Args:
            text: ``float[K, E]`` the vocabulary asked for.
            dataset: A training dataset whose label space ``text`` is; None (or a dataset not
                trained on) matches ``text`` against the stored training texts first, then
                falls back to the nearest training label per class.
        Returns:
            ``int64[K]`` union class indices.
        """
        if dataset not in self.dataset_index:
            dataset = matching_dataset(text, self.dataset_texts())
        if dataset is not None:
            ids = self.dataset_index[dataset]
            if len(ids) != len(text):
                raise ValueError(
                    f"Dataset '{dataset}' has {len(ids)} classes but {len(text)} texts were "
                    "given; pass its own label space, or dataset=None for another vocabulary."
                )
            return ids.to(self.label_union.device)
        return self.label_union[nearest_labels(text, self.label_embeddings)]

    def semantic_logits(
        self,
        output: PixelOutput,
        text_embeddings: torch.Tensor,
        *,
        dataset: str | None = None,
        pixel_major: bool = False,
    ) -> torch.Tensor:
        """Class logits at the embedding resolution.

        Args:
            output: The model output for B images.
            text_embeddings: ``float[K, E]`` texts of the label space asked for.
            dataset: The training dataset whose label space it is, if any (see
                :meth:`classes_for`).
            pixel_major: Return ``[B, H/4, W/4, K]`` instead.
        Returns:
            ``float[B, K, H/4, W/4]``.
        """
        ids = self.classes_for(text_embeddings, dataset)
        weight = self.classifier.weight[:, :, 0, 0].index_select(0, ids)
        bias = self.classifier.bias.index_select(0, ids)
        return linear_logits(output.embeddings, weight, bias, pixel_major=pixel_major)

    def loss_counts(self, batch: Batch) -> dict[str, float]:
        """This process's normaliser counts: labelled pixels (M)."""
        return pixel_count(batch)

    def loss(
        self,
        output: PixelOutput,
        batch: Batch,
        texts: Mapping[str, torch.Tensor],
        *,
        normalisers: Mapping[str, torch.Tensor | float],
    ) -> LossResult:
        """Per-pixel cross-entropy of each image over its own dataset's union classes.

        Args:
            output: Model output for the batch.
            batch: The collated batch (``semantic int64[B, H, W]``, 255 = ignore).
            texts: Unused (the classifier is one-hot).
            normalisers: ``{"pixels": M}`` (global count / world size).
        """
        if batch.semantic is None:
            raise ValueError("The union baseline needs semantic maps (clean or noisy masks).")
        logits = self.union_logits(output)

        def own_logits(name: str, rows: torch.Tensor) -> torch.Tensor:
            if name not in self.dataset_index:
                raise ValueError(
                    f"Batch has images of '{name}', which this union was not built for "
                    f"({self.datasets})."
                )
            own = self.dataset_index[name].to(logits.device)
            return logits.index_select(0, rows).index_select(1, own)

        total, per_dataset = per_dataset_cross_entropy(batch.datasets, batch.semantic, own_logits)
        return LossResult(total=total / normalisers["pixels"], per_dataset=per_dataset)

    def extra_state(self) -> dict:
        """The union's class names and each dataset's union indices (JSON-safe)."""
        return {
            "union_names": list(self.union_names),
            "dataset_index": {d: ids.tolist() for d, ids in self.dataset_index.items()},
        }

    def load_extra_state(self, state: Mapping) -> None:
        """Restore :meth:`extra_state`; it must describe the union this recipe was built with."""
        if not state:
            return
        index = {d: list(ids) for d, ids in state["dataset_index"].items()}
        if list(state["union_names"]) != self.union_names or index != {
            d: ids.tolist() for d, ids in self.dataset_index.items()
        }:
            raise ValueError(
                "The checkpoint's union label space differs from the one rebuilt from its label "
                f"spaces (saved: {state['union_names']}; rebuilt: {self.union_names})."
            )


def build_union_recipe(*, context: RecipeContext) -> UnionRecipe:
    """The ``union`` baseline: one-hot classes over the merged training label spaces (it has
    no settings of its own)."""
    check_training_context("union", context.label_spaces, context.texts, context.train_datasets)
    return UnionRecipe(
        model=pixel_network(context),
        embed_dim=context.embed_dim,
        class_names={d: context.label_spaces[d].names for d in context.train_datasets},
        label_embeddings={d: context.texts[d] for d in context.train_datasets},
    )
