"""The ``sentence`` recipe (SentenceLabels.txt): per-pixel embeddings classified by cosine
similarity against the text embeddings of the current dataset's labels, learnable temperature,
loss L_HD (eq. 1-3) computed per dataset in that dataset's own label space.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from babelseg.data.collate import Batch
from babelseg.data.sample import Annotation
from babelseg.losses.pixel_text import LearnableTemperature, cosine_logits, pixel_cross_entropy_sum
from babelseg.models.outputs import PixelOutput
from babelseg.models.pixel_model import PixelEmbeddingModel
from babelseg.recipes.base import LossResult, group_by_dataset


class SentenceRecipe(nn.Module):
    """Pixel-embedding network + learnable temperature.

    Args:
        model: The pixel-embedding network (embedding dim = text dim).
        temperature: Initial tau of eq. 2.
        learn_temperature: Train tau.
    """

    name = "sentence"
    supported_annotations = {Annotation.CLEAN, Annotation.NOISY}

    def __init__(
        self,
        *,
        model: PixelEmbeddingModel,
        temperature: float = 0.07,
        learn_temperature: bool = True,
    ) -> None:
        super().__init__()
        self.model = model
        self.temperature = LearnableTemperature(
            temperature=temperature, learnable=learn_temperature
        )

    def forward(self, images: torch.Tensor) -> PixelOutput:
        """``images float[B, 3, H, W]`` -> ``PixelOutput(embeddings float[B, D, H/4, W/4])``."""
        return self.model(images)

    def semantic_logits(self, output: PixelOutput, text_embeddings: torch.Tensor) -> torch.Tensor:
        """Class logits at the embedding resolution.

        Args:
            output: The model output for B images.
            text_embeddings: ``float[K, D]`` texts of the label space asked for.
        Returns:
            ``float[B, K, H/4, W/4]``.
        """
        return cosine_logits(output.embeddings, text_embeddings, self.temperature())

    def loss(
        self,
        output: PixelOutput,
        batch: Batch,
        texts: Mapping[str, torch.Tensor],
        *,
        normaliser: torch.Tensor | float,
    ) -> LossResult:
        """L_HD over the batch, each image against its own dataset's label texts.

        Args:
            output: Model output for the batch.
            batch: The collated batch (``semantic int64[B, H, W]``).
            texts: ``{dataset: float[K_d, D]}`` text embeddings.
            normaliser: Number of valid pixels to divide by (the global count / world size under
                DDP, so averaged gradients equal those of one process on the whole batch).
        """
        if batch.semantic is None:
            raise ValueError("The sentence recipe needs semantic targets; got a batch without any.")
        scale = self.temperature()
        total = output.embeddings.new_zeros(())
        per_dataset: dict[str, torch.Tensor] = {}
        for name, idx in group_by_dataset(batch.datasets).items():
            index = torch.tensor(idx, device=output.embeddings.device)
            logits = cosine_logits(output.embeddings.index_select(0, index), texts[name], scale)
            target = batch.semantic.index_select(0, index)
            loss_sum, count = pixel_cross_entropy_sum(logits, target)
            total = total + loss_sum
            per_dataset[name] = (loss_sum / count.clamp(min=1)).detach()
        logs = {"temperature": float(1.0 / scale.detach())}
        return LossResult(total=total / normaliser, per_dataset=per_dataset, logs=logs)

    @staticmethod
    def count_valid(batch: Batch) -> int:
        """Number of labelled pixels in the batch (the loss normaliser before all-reduce)."""
        assert batch.semantic is not None
        return int((batch.semantic != 255).sum())
