"""Dataset-specific modules: DaTaSeg's ablation alternative to sharing every parameter
(DaTaSeg.txt section 4.7, supplementary Fig. 8, Tables 5, 7, 8, 9).

The paper's method shares every parameter; these modules are what it compares against and finds
worse. Each training dataset ``d`` gets its own:

- :class:`DatasetQueries`: ``Q_d`` learnable queries (features and positional embeddings) fed to
  the transformer decoder after the N shared ones, only the image's own dataset's set;
- :class:`DatasetClassHeads`: the query -> class-embedding projection (a linear layer, as the
  shared ``class_head`` it replaces);
- :class:`DatasetTextClassifier`: the learnable background embedding (replacing the shared one)
  beside the frozen text classifiers.

Datasets are rows of stacked parameters, gathered per image by an ``int64[B]`` dataset index, so
mixed batches need no grouping and every parameter is in every step's graph: an image of dataset
A gives dataset B's rows an exact zero gradient (never None, so DistributedDataParallel needs no
unused-parameter search). AdamW still moves B's rows on A's steps by their momentum (and weight
decay where it applies), as a framework with dense gradients would: OUR choice, the paper does
not say. :class:`DatasetIndex` maps dataset names to rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from babelseg.models.heads.text_classifier import LearnableTemperature, background_logits


class DatasetIndex:
    """Dataset names -> rows of the dataset-specific parameters.

    Args:
        datasets: The training datasets, in row order (the checkpoint's ``train_datasets``).
        transfer_dataset: The training dataset whose modules serve any other vocabulary (a
            dataset the model was not trained on, or none named); None: such inference is an
            error. The paper calls the choice ill-defined (supp., "hurts the open-vocabulary
            capability") and makes none: this setting is OUR choice.
    """

    def __init__(self, *, datasets: Sequence[str], transfer_dataset: str | None = None) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError(
                "Dataset-specific modules need the training datasets (data.train); none given."
            )
        if len(set(self.datasets)) != len(self.datasets):
            raise ValueError(f"Training datasets repeat a name: {self.datasets}.")
        if transfer_dataset is not None and transfer_dataset not in self.datasets:
            raise ValueError(
                f"recipe.dataseg.transfer_dataset={transfer_dataset!r} is not a training dataset; "
                f"use one of {self.datasets}."
            )
        self.transfer_dataset = transfer_dataset
        self._rows = {name: i for i, name in enumerate(self.datasets)}

    def row(self, dataset: str | None) -> int:
        """The row of ``dataset`` (the transfer dataset's for any other name or None).

        Raises:
            ValueError: ``dataset`` is not a training dataset and no transfer dataset is set.
        """
        if dataset in self._rows:
            return self._rows[dataset]
        if self.transfer_dataset is None:
            raise ValueError(
                f"This model has dataset-specific modules (recipe.dataseg.dataset_queries / "
                f"dataset_classification) for its training datasets {self.datasets}; "
                f"{'no dataset' if dataset is None else repr(dataset)} was given, and which "
                "dataset's modules serve another vocabulary is undefined (DaTaSeg supp.). "
                "Predict with dataset=NAME of a training dataset, or train with "
                "recipe.dataseg.transfer_dataset=NAME to use that dataset's modules."
            )
        return self._rows[self.transfer_dataset]

    def rows(self, datasets: Sequence[str | None], device: torch.device) -> torch.Tensor:
        """``int64[B]`` rows of each image's dataset, on ``device`` (built on the host)."""
        return torch.tensor([self.row(d) for d in datasets], dtype=torch.int64, device=device)


class DatasetQueries(nn.Module):
    """``Q_d`` learnable queries per dataset (features and positional embeddings).

    Stored as ``nn.Embedding(T * Q_d, C)`` so that their names end as the shared queries'
    (``query_feat.weight``, ``query_pos.weight``: no weight decay) and they start as those do
    (standard normal).

    Args:
        num_datasets: T.
        num_queries: ``Q_d`` (>= 1).
        dim: Query width C.
    """

    def __init__(self, *, num_datasets: int, num_queries: int, dim: int) -> None:
        super().__init__()
        if num_datasets < 1 or num_queries < 1:
            raise ValueError(
                f"DatasetQueries needs num_datasets >= 1 and num_queries >= 1, got "
                f"{num_datasets} and {num_queries}."
            )
        self.num_datasets, self.num_queries = num_datasets, num_queries
        self.query_feat = nn.Embedding(num_datasets * num_queries, dim)
        self.query_pos = nn.Embedding(num_datasets * num_queries, dim)

    def forward(
        self, x: torch.Tensor, pos: torch.Tensor, rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append each image's dataset queries.

        Args:
            x: ``float[B, N, C]`` shared query features.
            pos: ``float[B, N, C]`` shared query positional embeddings.
            rows: ``int64[B]`` dataset rows (:class:`DatasetIndex`).
        Returns:
            ``float[B, N + Q_d, C]`` features and positional embeddings.
        """
        shape = (self.num_datasets, self.num_queries, -1)
        feat = self.query_feat.weight.view(shape).index_select(0, rows)
        own_pos = self.query_pos.weight.view(shape).index_select(0, rows)
        return torch.cat([x, feat.to(x.dtype)], 1), torch.cat([pos, own_pos.to(pos.dtype)], 1)


class DatasetClassHeads(nn.Module):
    """One linear query -> class-embedding projection per dataset.

    Args:
        num_datasets: T.
        in_dim: Query width C.
        embed_dim: Class-embedding dimension D.
    """

    def __init__(self, *, num_datasets: int, in_dim: int, embed_dim: int) -> None:
        super().__init__()
        if num_datasets < 1:
            raise ValueError(f"DatasetClassHeads needs num_datasets >= 1, got {num_datasets}.")
        self.weight = nn.Parameter(torch.empty(num_datasets, embed_dim, in_dim))
        self.bias = nn.Parameter(torch.empty(num_datasets, embed_dim))
        bound = 1.0 / math.sqrt(in_dim)  # each row initialised as nn.Linear initialises itself
        for w in self.weight:
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, y: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """``float[B, N, C]`` normed queries and ``int64[B]`` rows -> ``float[B, N, D]``."""
        weight = self.weight.index_select(0, rows).to(y.dtype)  # [B, D, C]
        bias = self.bias.index_select(0, rows).to(y.dtype)  # [B, D]
        return torch.baddbmm(bias[:, None, :], y, weight.transpose(1, 2))


class DatasetTextClassifier(nn.Module):
    """:class:`~babelseg.models.heads.text_classifier.TextClassifier` with one learnable
    background embedding per dataset instead of the shared one.

    Args:
        index: The dataset rows (and the transfer dataset for other vocabularies).
        embed_dim: D.
        temperature: Initial tau.
        learn_temperature: Train tau.
    """

    def __init__(
        self, *, index: DatasetIndex, embed_dim: int, temperature: float, learn_temperature: bool
    ) -> None:
        super().__init__()
        self.index = index
        self.temperature = LearnableTemperature(
            temperature=temperature, learnable=learn_temperature
        )
        backgrounds = F.normalize(torch.randn(len(index.datasets), embed_dim), dim=1)
        self.backgrounds = nn.Parameter(backgrounds)

    def forward(
        self, class_embeddings: torch.Tensor, text: torch.Tensor, *, dataset: str | None = None
    ) -> torch.Tensor:
        """``float[..., Q, D]`` and ``float[K, D]`` -> ``float[..., Q, K + 1]`` logits, the last
        against ``dataset``'s background (see :meth:`DatasetIndex.row` for other names).

        Raises:
            ValueError: ``dataset`` is not a training dataset and no transfer dataset is set.
        """
        background = self.backgrounds[self.index.row(dataset)]
        return background_logits(class_embeddings, text, background, self.temperature())
