"""The ``ms3`` recipe (MS3.txt): multi-dataset pretraining with multimodal supervision.

Every pixel is paired with the embeddings of the *union* label space of the training datasets
(identical label texts are one class), temperature tau = 0.07:

- language (eq. 1): pixel vs. the text embeddings T. Section 3.2 improves T in a first stage:
  for the first ``prompt_steps`` steps, M learnable context tokens in front of every label text
  (:class:`~babelseg.labels.prompt.PromptLearner`) train with the network under eq. 1; then T is
  computed once with the learned context and kept fixed ("the text encoder is discarded after
  obtaining the language embeddings T"), and the second stage adds the terms below;
- visual (eq. 2, 4): a momentum copy of the network embeds each batch; a per-class FIFO memory
  bank keeps those pixel embeddings; the class visual embeddings V are similarity-weighted bank
  averages; L = L_l + alpha L_v (eq. 3);
- multi-label (eq. 5-8): a class also counts as positive every other dataset's class whose text
  embedding scores at least as high as its own against the class's mean (bank) pixel embedding.

The paper puts two projection heads on the decoder, one per pairing; here one pixel-embedding
head in the text space serves both, so the bank's embeddings are comparable with T and eq. 5 is
read off the bank. The bank, ``V^old`` and the fixed T are buffers (saved with the weights: a
resumed run continues exactly). Under DDP the bank is rank 0's (buffers are broadcast).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from babelseg.data.collate import Batch
from babelseg.data.sample import Annotation
from babelseg.labels.prompt import PromptLearner, prompt_learner_for
from babelseg.losses.memory_bank import ClassMemoryBank, sample_bank_rows
from babelseg.losses.multi_label import (
    class_text_similarity,
    multi_label_targets,
    multi_positive_cross_entropy_sum,
)
from babelseg.models.heads.text_classifier import cosine_logits
from babelseg.models.momentum import MomentumEncoder
from babelseg.models.outputs import MS3Output, PixelOutput
from babelseg.models.pixel_model import PixelEmbeddingModel
from babelseg.recipes.base import (
    LossResult,
    Recipe,
    RecipeContext,
    group_by_dataset,
    pixel_count,
    pixel_network,
)
from babelseg.recipes.label_matching import union_label_space


@dataclass
class MS3Config:
    """``ms3`` settings (MS3.txt).

    Attributes:
        context_length: Learnable context tokens M of the language-embedding improvement.
        alpha: Weight of the visual loss L_v.
        momentum: Momentum of the momentum image encoder.
        bank_size: Pixel embeddings kept per class in the memory bank.
        multi_label: Cross-modal multi-label extension (eq. 5-8).
        language: Use the language loss L_l.
        visual: Use the visual loss L_v.
        prompt_steps: Length of the first stage, in which the context tokens train (eq. 1 only);
            afterwards the language embeddings are fixed and L_v / multi-label join.
        bank_pixels: Pixels per class and image put in the memory bank each step.
    """

    context_length: int = 13
    alpha: float = 1.0
    momentum: float = 0.999
    bank_size: int = 64
    multi_label: bool = True
    language: bool = True
    visual: bool = True
    prompt_steps: int = 300
    bank_pixels: int = 8


class MS3Recipe(Recipe):
    """Pixel-embedding network trained against union-space language and visual embeddings.

    Args:
        model: The pixel-embedding network (embedding dim = text dim D).
        union_texts: The K label texts of the union label space.
        dataset_classes: ``{dataset: [union index of each of its classes]}`` (training datasets).
        language_embeddings: ``float[K, D]`` frozen text embeddings of ``union_texts``.
        prompt: Learnable prompt context (None = the frozen embeddings are T).
        label_texts: ``{dataset: strings}`` of every known dataset, so prompted embeddings of
            datasets outside the union (held-out ones) can be exported.
        prompt_steps: Length of the first (prompt-learning) stage.
        temperature: tau of eq. 1-2 (fixed).
        alpha: Weight of L_v.
        momentum: Momentum of the momentum network.
        bank_size: Bank entries per class.
        bank_pixels: Pixels per class and image enqueued per step (random, of the labelled ones,
            drawn from a generator seeded by the step).
        language / visual / multi_label: The switches of the ablation.
    """

    name = "ms3"
    supported_annotations = frozenset({Annotation.CLEAN, Annotation.NOISY})

    def __init__(
        self,
        *,
        model: PixelEmbeddingModel,
        union_texts: list[str],
        dataset_classes: Mapping[str, list[int]],
        language_embeddings: torch.Tensor,
        prompt: PromptLearner | None = None,
        label_texts: Mapping[str, list[str]] | None = None,
        prompt_steps: int = 0,
        temperature: float = 0.07,
        alpha: float = 1.0,
        momentum: float = 0.999,
        bank_size: int = 64,
        bank_pixels: int = 8,
        language: bool = True,
        visual: bool = True,
        multi_label: bool = True,
    ) -> None:
        super().__init__()
        if not (language or visual):
            raise ValueError("recipe.ms3: set at least one of language=true or visual=true.")
        if temperature <= 0:
            raise ValueError(f"recipe.temperature must be > 0, got {temperature}.")
        k = len(union_texts)
        if tuple(language_embeddings.shape) != (k, model.embed_dim):
            raise ValueError(
                f"language_embeddings has shape {tuple(language_embeddings.shape)}, expected "
                f"({k}, {model.embed_dim})."
            )
        self.model = model
        self.union_texts = list(union_texts)
        self.dataset_classes = {n: list(c) for n, c in dataset_classes.items()}
        self.label_texts = {n: list(s) for n, s in (label_texts or {}).items()}
        self.prompt = prompt if language else None
        self.prompt_steps = int(prompt_steps)
        self.scale = 1.0 / temperature
        self.alpha = alpha
        self.bank_pixels = int(bank_pixels)
        self.language, self.visual, self.multi_label = language, visual, multi_label
        self.register_buffer("language_embeddings", F.normalize(language_embeddings.float(), dim=1))
        self.register_buffer("language_frozen", torch.tensor(self.prompt is None))
        snapshot = None
        if self.prompt is not None and self.prompt.context_length > 0:
            snapshot = self.prompt.context.detach().clone()
        self.register_buffer("context_snapshot", snapshot)  # None: not in the weights
        uses_bank = visual or multi_label
        self.momentum = MomentumEncoder(model, momentum=momentum) if uses_bank else None
        self.bank = (
            ClassMemoryBank(num_classes=k, size=bank_size, dim=model.embed_dim)
            if uses_bank
            else None
        )
        self._pending: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None
        self._step = 0

    # ------------------------------------------------------------------ stages and texts
    @property
    def prompt_stage(self) -> bool:
        """True while the context tokens train (first stage)."""
        return self.prompt is not None and not bool(self.language_frozen)

    def on_step_start(self, step: int) -> None:
        """At ``step == prompt_steps``: compute T once with the learned context and keep it."""
        self._step = step
        if self.prompt_stage and step >= self.prompt_steps:
            with torch.no_grad():
                self.language_embeddings.copy_(self.prompt(self.union_texts))
                if self.context_snapshot is not None:
                    self.context_snapshot.copy_(self.prompt.context)
            self.language_frozen.fill_(True)

    def union_language(self) -> torch.Tensor:
        """``float[K, D]`` T: prompted (differentiable) in the first stage, fixed afterwards."""
        if self.prompt_stage:
            return self.prompt(self.union_texts)
        return self.language_embeddings

    def step_texts(
        self, texts: Mapping[str, torch.Tensor], *, datasets: Collection[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """Each dataset's rows of T; datasets outside the union through the prompt (if any).
        ``datasets`` is not used: every pixel is paired with the whole union T."""
        union = self.union_language()
        out: dict[str, torch.Tensor] = {}
        for name, base in texts.items():
            if name in self.dataset_classes:
                index = torch.tensor(self.dataset_classes[name], device=union.device)
                out[name] = union.index_select(0, index)
            elif self.prompt is not None and name in self.label_texts:
                out[name] = self.prompt(self.label_texts[name]).to(base.device)
            else:
                out[name] = base
        return out

    def vocabulary_embeddings(self, strings: list[str], base: torch.Tensor) -> torch.Tensor:
        """Any vocabulary through the learned prompt (zero-shot prediction, section 4.2)."""
        if self.prompt is None:
            return base
        return self.prompt(strings).to(base.device)

    def _union_from(self, texts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``float[K, D]`` union T assembled from the per-dataset rows of :meth:`step_texts`."""
        rows: list[torch.Tensor | None] = [None] * len(self.union_texts)
        for name, classes in self.dataset_classes.items():
            if name in texts:
                for c, u in enumerate(classes):
                    if rows[u] is None:
                        rows[u] = texts[name][c]
        missing = [self.union_texts[u] for u, r in enumerate(rows) if r is None]
        if missing:
            raise ValueError(f"ms3: no text embedding for union classes {missing[:5]}.")
        return F.normalize(torch.stack(rows).float(), dim=1)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ network
    def forward(self, images: torch.Tensor) -> MS3Output:
        """``images float[B, 3, H, W]`` -> embeddings ``float[B, D, H/4, W/4]`` (+ momentum
        embeddings while training)."""
        out = self.model(images)
        momentum = None
        if self.training and self.momentum is not None:
            momentum = self.momentum(images)
        return MS3Output(embeddings=out.embeddings, momentum_embeddings=momentum)

    def semantic_logits(
        self,
        output: PixelOutput,
        text_embeddings: torch.Tensor,
        *,
        dataset: str | None = None,
        pixel_major: bool = False,
    ) -> torch.Tensor:
        """Scaled cosine logits ``float[B, K, h, w]`` (``[B, h, w, K]`` when ``pixel_major``).

        Without the language loss (visual-only ablation) a training dataset is classified by its
        classes' visual embeddings V; any other vocabulary by ``text_embeddings``.
        """
        if not self.language and dataset in self.dataset_classes and self.bank is not None:
            index = torch.tensor(self.dataset_classes[dataset], device=self.bank.previous.device)
            text_embeddings = self.bank.previous.index_select(0, index)
        return cosine_logits(
            output.embeddings, text_embeddings, self.scale, pixel_major=pixel_major
        )

    def loss_counts(self, batch: Batch) -> dict[str, float]:
        """Labelled pixels of this process (the normaliser of both pairing losses)."""
        return pixel_count(batch)

    # ------------------------------------------------------------------ losses
    def _positives(self, language: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{dataset: bool[K_d, K]}`` positives per class: eq. 6, or the class alone."""
        k = len(self.union_texts)
        out = {}
        similarity = None
        if self.multi_label and not self.prompt_stage and self.bank is not None:
            similarity = class_text_similarity(self.bank.class_means(), language.detach())
        for name, classes in self.dataset_classes.items():
            index = torch.tensor(classes, device=language.device)
            if similarity is None:
                out[name] = F.one_hot(index, k).bool()
            else:
                out[name] = multi_label_targets(similarity, index, valid=self.bank.valid())
        return out

    def loss(
        self,
        output: MS3Output,
        batch: Batch,
        texts: Mapping[str, torch.Tensor],
        *,
        normalisers: Mapping[str, torch.Tensor | float],
    ) -> LossResult:
        """``(L_l + alpha L_v) / M`` over the batch's M labelled pixels, in the union space.

        Args:
            output: Model output (with momentum embeddings when the bank is in use).
            batch: The collated batch (``semantic int64[B, H, W]``, dataset class indices).
            texts: :meth:`step_texts` of the training datasets (T, per dataset).
            normalisers: ``{"pixels": M}`` (global count / world size).
        """
        if batch.semantic is None:
            raise ValueError("ms3 trains on semantic maps; this batch has none.")
        emb = output.embeddings
        language = self._union_from(texts).to(emb.device)
        positives = self._positives(language)
        use_visual = self.visual and not self.prompt_stage and self.bank is not None
        visual = allowed = None
        if use_visual:
            visual = self.bank.visual_embeddings()
            allowed = self.bank.valid()
        lang_sum, vis_sum = emb.new_zeros(()), emb.new_zeros(())
        per_dataset: dict[str, torch.Tensor] = {}
        for name, idx in group_by_dataset(batch.datasets).items():
            index = torch.tensor(idx, device=emb.device)
            part_emb = emb.index_select(0, index)
            target = batch.semantic.index_select(0, index)
            valid = target != 255
            pos = positives[name][target[valid]]  # [P, K]
            part = emb.new_zeros(())
            pairs = [(language, None, 1.0)] if self.language or self.prompt_stage else []
            if use_visual:
                pairs.append((visual, allowed, self.alpha))
            for table, mask, weight in pairs:
                logits = cosine_logits(part_emb, table, self.scale)
                if logits.shape[-2:] != target.shape[-2:]:
                    logits = F.interpolate(
                        logits, size=target.shape[-2:], mode="bilinear", align_corners=False
                    )
                flat = logits.permute(0, 2, 3, 1)[valid]
                value = multi_positive_cross_entropy_sum(flat, pos, allowed=mask)
                if table is visual:
                    vis_sum = vis_sum + weight * value
                else:
                    lang_sum = lang_sum + value
                part = part + weight * value.detach()
            per_dataset[name] = part / valid.sum().clamp(min=1)
        total = (lang_sum + vis_sum) / normalisers["pixels"]
        if self.prompt is not None and not self.prompt_stage:  # keep DDP's view of used params
            total = total + 0.0 * self.prompt.context.sum()
        if self.bank is not None and output.momentum_embeddings is not None:
            rows, classes = sample_bank_rows(
                output.momentum_embeddings,
                batch.semantic,
                [self.dataset_classes[name] for name in batch.datasets],
                per_class=self.bank_pixels,
                seed=0x5EED + self._step,
            )
            self._pending = (rows.detach(), classes, None if visual is None else visual.detach())
        logs = {
            "loss_language": float(lang_sum.detach() / normalisers["pixels"]),
            "loss_visual": float(vis_sum.detach() / normalisers["pixels"]),
            "prompt_stage": float(self.prompt_stage),
        }
        if self.bank is not None:
            logs["bank_classes"] = float(self.bank.valid().sum())
        return LossResult(total=total, per_dataset=per_dataset, logs=logs)

    def on_step_end(self, step: int) -> None:
        """After the optimizer step: momentum update, bank enqueue, ``V^old``; in the second
        stage the context is put back (it only received a zero gradient, but AdamW moves it)."""
        if self.prompt is not None and not self.prompt_stage and self.context_snapshot is not None:
            with torch.no_grad():
                self.prompt.context.copy_(self.context_snapshot)
        if self.momentum is not None:
            self.momentum.update(self.model)
        if self._pending is not None and self.bank is not None:
            rows, classes, visual = self._pending
            self.bank.enqueue(rows, classes)
            if visual is not None:
                self.bank.remember(visual)
        self._pending = None


def build_ms3_recipe(section: MS3Config, *, context: RecipeContext) -> MS3Recipe:
    """The ``ms3`` recipe (MS3.txt) over the union label space of the training datasets."""
    if section.context_length < 0 or section.prompt_steps < 0:
        raise ValueError(
            f"recipe.ms3.context_length and prompt_steps must be >= 0, got "
            f"{section.context_length} and {section.prompt_steps}."
        )
    texts, classes, frozen = union_label_space(
        "ms3", context.label_texts, context.texts, context.train_datasets
    )
    model = pixel_network(context)
    prompt = None
    if section.language and section.context_length > 0:
        encoder = context.build_text_encoder("recipe.ms3.context_length > 0")
        prompt = prompt_learner_for(encoder, section.context_length)
    return MS3Recipe(
        model=model,
        union_texts=texts,
        dataset_classes=classes,
        language_embeddings=frozen,
        prompt=prompt,
        label_texts=context.label_texts,
        prompt_steps=section.prompt_steps,
        temperature=context.temperature,
        alpha=section.alpha,
        momentum=section.momentum,
        bank_size=section.bank_size,
        bank_pixels=section.bank_pixels,
        language=section.language,
        visual=section.visual,
        multi_label=section.multi_label,
    )
