"""The ``multihead`` baseline: a shared body and one 1x1 classifier per training dataset.

Each image is classified by its own dataset's head and trained with per-pixel cross-entropy in
that dataset's label space; the heads share the backbone, pixel decoder and embedding head. No
text is involved in training (LMSeg.txt Table 2 / AutoUniSeg.txt Table 2 "multi-head" rows).

Prediction: a training dataset's vocabulary gets its own head. Any other vocabulary (held-out
datasets, user labels) is answered through text: each asked class is matched to the training
label, over all heads, whose text embedding (in the run's text mode) is nearest to its text
embedding (see :mod:`babelseg.recipes.label_matching`), and takes that label's log-probability
under its head's own softmax. Log-probabilities rather than raw logits, because the heads were
never trained against each other, so their raw scales are not comparable.
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
)


class MultiHeadRecipe(Recipe):
    """Pixel-embedding body + one linear classifier per training dataset.

    Args:
        model: The shared pixel-embedding network.
        embed_dim: Its embedding width ``D`` (the heads' input).
        num_classes: ``{dataset: K_d}`` of the training datasets, sampler order.
        label_embeddings: ``{dataset: float[K_d, E]}`` their text embeddings (run's text mode), used
            only to map unknown vocabularies at prediction time.
    """

    name = "multihead"
    supported_annotations = frozenset({Annotation.CLEAN, Annotation.NOISY})
    renamed_weights = {"label_texts": "label_embeddings"}  # before one name per concept

    def __init__(
        self,
        *,
        model: PixelEmbeddingModel,
        embed_dim: int,
        num_classes: Mapping[str, int],
        label_embeddings: Mapping[str, torch.Tensor],
    ) -> None:
        super().__init__()
        if not num_classes:
            raise ValueError("The multihead baseline needs at least one training dataset.")
        bad = {d: len(label_embeddings[d]) for d in num_classes if d in label_embeddings}
        bad = {d: k for d, k in bad.items() if k != num_classes[d]}
        missing = [d for d in num_classes if d not in label_embeddings]
        if missing or bad:
            raise ValueError(
                f"Label texts must cover every training dataset's classes: missing {missing}, "
                f"wrong counts {bad} (expected {dict(num_classes)})."
            )
        self.model = model
        self.datasets = list(num_classes)
        self.num_classes = [int(num_classes[d]) for d in self.datasets]
        self.heads = nn.ModuleList(nn.Conv2d(embed_dim, k, kernel_size=1) for k in self.num_classes)
        self.register_buffer(
            "label_embeddings", torch.cat([label_embeddings[d].float() for d in self.datasets])
        )
        self.register_buffer(
            "label_head",
            torch.cat([torch.full((k,), i) for i, k in enumerate(self.num_classes)]).long(),
        )
        self.register_buffer(
            "label_class", torch.cat([torch.arange(k) for k in self.num_classes]).long()
        )

    def forward(self, images: torch.Tensor) -> PixelOutput:
        """``images float[B, 3, H, W]`` -> ``PixelOutput(embeddings float[B, D, H/4, W/4])``."""
        return self.model(images)

    def head_logits(self, output: PixelOutput, dataset: str) -> torch.Tensor:
        """``float[B, K_d, H/4, W/4]``: the head of training dataset ``dataset``."""
        if dataset not in self.datasets:
            raise ValueError(f"No head for '{dataset}'; heads: {self.datasets}.")
        return self.heads[self.datasets.index(dataset)](output.embeddings)

    def dataset_texts(self) -> dict[str, torch.Tensor]:
        """``{dataset: float[K_d, E]}`` the stored training texts."""
        return split_rows(self.label_embeddings, self.num_classes, self.datasets)

    def semantic_logits(
        self,
        output: PixelOutput,
        text_embeddings: torch.Tensor,
        *,
        dataset: str | None = None,
        pixel_major: bool = False,
    ) -> torch.Tensor:
        """Class scores at the embedding resolution.

        Args:
            output: The model output for B images.
            text_embeddings: ``float[K, E]`` texts of the label space asked for.
            dataset: The training dataset whose label space it is, if any. None (or a dataset
                without a head) first matches the texts against the stored training texts, then
                maps each asked class to the nearest training label over all heads.
            pixel_major: Return ``[B, H/4, W/4, K]`` instead.
        Returns:
            ``float[B, K, H/4, W/4]``: the head's logits for a training vocabulary, per-head
            log-probabilities for any other.
        """
        if dataset not in self.datasets:
            dataset = matching_dataset(text_embeddings, self.dataset_texts())
        if dataset is not None:
            k = self.num_classes[self.datasets.index(dataset)]
            if k != len(text_embeddings):
                raise ValueError(
                    f"Dataset '{dataset}' has {k} classes but {len(text_embeddings)} texts were "
                    "given; pass its own label space, or dataset=None for another vocabulary."
                )
            logits = self.head_logits(output, dataset)
        else:
            nearest = nearest_labels(text_embeddings, self.label_embeddings)
            heads, classes = self.label_head[nearest], self.label_class[nearest]
            logits = output.embeddings.new_empty(
                (output.embeddings.shape[0], len(nearest), *output.embeddings.shape[-2:])
            )
            for h in heads.unique().tolist():
                asked = (heads == h).nonzero()[:, 0]
                log_prob = self.heads[h](output.embeddings).log_softmax(dim=1)
                logits[:, asked] = log_prob[:, classes[asked]]
        return logits.permute(0, 2, 3, 1) if pixel_major else logits

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
        """Per-pixel cross-entropy of each image on its own dataset's head.

        Args:
            output: Model output for the batch.
            batch: The collated batch (``semantic int64[B, H, W]``, 255 = ignore).
            texts: Unused (the heads are one-hot).
            normalisers: ``{"pixels": M}`` (global count / world size).
        """
        if batch.semantic is None:
            raise ValueError("The multihead baseline needs semantic maps (clean or noisy masks).")
        emb = output.embeddings
        used: set[int] = set()

        def head_logits(name: str, rows: torch.Tensor) -> torch.Tensor:
            if name not in self.datasets:
                raise ValueError(
                    f"Batch has images of '{name}', which has no head ({self.datasets})."
                )
            head = self.datasets.index(name)
            used.add(head)
            return self.heads[head](emb.index_select(0, rows))

        total, per_dataset = per_dataset_cross_entropy(batch.datasets, batch.semantic, head_logits)
        idle = [p for i, h in enumerate(self.heads) if i not in used for p in h.parameters()]
        if idle:  # DDP expects a gradient for every parameter in every step
            total = total + 0.0 * sum(p.sum() for p in idle)
        return LossResult(total=total / normalisers["pixels"], per_dataset=per_dataset)

    def extra_state(self) -> dict:
        """The heads' datasets and class counts (JSON-safe)."""
        return {"datasets": list(self.datasets), "num_classes": list(self.num_classes)}

    def load_extra_state(self, state: Mapping) -> None:
        """Check :meth:`extra_state` against the heads this recipe was built with."""
        if not state:
            return
        saved: Sequence = list(zip(state["datasets"], state["num_classes"], strict=True))
        if saved != list(zip(self.datasets, self.num_classes, strict=True)):
            raise ValueError(
                f"The checkpoint's heads {saved} differ from the ones rebuilt from its label "
                f"spaces {list(zip(self.datasets, self.num_classes, strict=True))}."
            )


def build_multihead_recipe(*, context: RecipeContext) -> MultiHeadRecipe:
    """The ``multihead`` baseline: shared body, one classifier per training dataset (it has no
    settings of its own)."""
    check_training_context("multihead", context.label_spaces, context.texts, context.train_datasets)
    return MultiHeadRecipe(
        model=pixel_network(context),
        embed_dim=context.embed_dim,
        num_classes={d: len(context.label_spaces[d]) for d in context.train_datasets},
        label_embeddings={d: context.texts[d] for d in context.train_datasets},
    )
