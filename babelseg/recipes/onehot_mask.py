"""One-hot class embeddings for the mask recipes: LMSeg Tables 2-3's baselines on the same
mask architecture ("MaskFormer + manual taxonomy" and "MaskFormer + multi-head").

Instead of the frozen text embeddings of each dataset's labels, the query class embeddings are
classified (the same scaled cosine and learnable no-object embedding) against learnable rows:

- ``union``: one row per class of the union of the training label spaces, identical names
  merged (:func:`~babelseg.recipes.label_matching.union_of_names`, the paper's manual taxonomy
  "only unites duplicate class names");
- ``multihead``: one row per class of every training dataset (a classifier per dataset).

A label space that was not trained on (held-out datasets, ``predict --labels``) is answered by
the row of the training label whose text embedding is nearest to each asked class's text, the
same lookup the per-pixel ``union`` and ``multihead`` baselines use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from babelseg.recipes.label_matching import nearest_labels, union_of_names

ONE_HOT_MODES = ("union", "multihead")


class OneHotClassEmbeddings(nn.Module):
    """Learnable class rows standing in for label texts.

    Args:
        mode: ``union`` or ``multihead``.
        class_names: ``{training dataset: [K_d class names]}``.
        label_texts: ``{training dataset: float[K_d, D]}`` their text embeddings (only used to
            answer label spaces that were not trained on).
        embed_dim: D.
    """

    def __init__(
        self,
        *,
        mode: str,
        class_names: Mapping[str, Sequence[str]],
        label_texts: Mapping[str, torch.Tensor],
        embed_dim: int,
    ) -> None:
        super().__init__()
        if mode not in ONE_HOT_MODES:
            raise ValueError(f"one-hot classes must be one of {list(ONE_HOT_MODES)}, got {mode!r}.")
        if not class_names:
            raise ValueError(f"The {mode} classifier needs at least one training dataset.")
        missing = [d for d in class_names if d not in label_texts]
        if missing:
            raise ValueError(f"No label texts for training dataset(s) {missing}.")
        self.mode = mode
        if mode == "union":
            names, index = union_of_names(class_names)
            rows = len(names)
        else:
            index, rows = {}, 0
            for dataset, classes in class_names.items():
                index[dataset] = list(range(rows, rows + len(classes)))
                rows += len(classes)
        self.dataset_rows = {d: list(ids) for d, ids in index.items()}
        self.weight = nn.Parameter(F.normalize(torch.randn(rows, embed_dim), dim=1))
        texts = torch.cat([label_texts[d].float() for d in class_names])
        self.register_buffer("label_texts", texts)
        self.register_buffer(
            "label_rows", torch.tensor([r for d in class_names for r in index[d]], dtype=torch.long)
        )

    def rows_for(self, text: torch.Tensor) -> torch.Tensor:
        """``float[K, D]`` rows answering an untrained vocabulary (nearest training label)."""
        return self.weight[self.label_rows[nearest_labels(text, self.label_texts)]]

    def forward(self, texts: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{dataset: float[K_d, D]}`` texts -> the rows that classify each dataset's classes."""
        out = {}
        for name, text in texts.items():
            if name in self.dataset_rows:
                index = torch.tensor(self.dataset_rows[name], device=self.weight.device)
                out[name] = self.weight.index_select(0, index)
            else:
                out[name] = self.rows_for(text.to(self.weight.device))
        return out
