"""The ``ms3`` recipe (MS3.txt): multi-dataset pretraining with multimodal supervision.

Every pixel is paired with the embeddings of the *union* label space of the training datasets
(identical label texts are one class), temperature tau = 0.07. The network
(:class:`~babelseg.models.two_head.TwoHeadPixelModel`) has two projection heads (section 4.1):

- **language-improvement stage M_I** (section 3.2, Fig. 2), the first ``language_stage_steps``
  steps: M learnable context tokens in front of every label text
  (:class:`~babelseg.labels.prompt.PromptLearner`) are learnt with the pixel-text pairing of eq. 1
  against **frozen** image-side features: the network's own decoder features of the pretraining
  batches (run without gradient, in eval mode) through a linear probe that exists only for this
  stage; the network does not train then. The paper adapts CLIP's image tower; offline we have
  none, so the network's own features are used (a CLIP image tower is not implemented). At the
  stage's end T is computed once with the learned context and kept fixed ("the text encoder is
  discarded after obtaining the language embeddings T"); Table 1's similarities before and
  after are kept in :meth:`extra_state`;
- **language** (eq. 1): the language head's pixel embeddings vs. T;
- **visual** (eq. 2-4): a momentum copy of the network embeds each batch; a per-class FIFO memory
  bank keeps its *visual-head* embeddings; the class visual embeddings V are similarity-weighted
  bank averages; the visual head's pixel embeddings are paired with V; L = L_l + alpha L_v;
- **multi-label** (eq. 5-9): a class also counts as positive every other dataset's class y' with
  S[y, y'] >= S[y, y], S read off a second bank of the momentum *language-head* embeddings
  against T; it needs the language loss (a visual-only run has no pixels aligned with T, and
  against V a class mean is nearest its own V). Our additions: extra positives once the class's
  bank is full, from step ``multi_label_start``, weight ramped from 0 to 1 over
  ``multi_label_ramp`` steps, at most ``multi_label_max_extra`` per class, for recognised
  classes only (``MS3Config.multi_label_recognised_only``).

The banks, ``V^old`` and T are buffers (saved with the weights: a resumed run continues exactly;
under DDP the banks are rank 0's, buffers are broadcast).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from babelseg.data.collate import Batch
from babelseg.data.sample import Annotation
from babelseg.labels.prompt import PromptLearner
from babelseg.labels.similarity import (
    same_group_pairs,
    similarity_summary,
    table1_start,
    within_group_similarity,
)
from babelseg.losses.memory_bank import ClassMemoryBank, sample_bank_rows
from babelseg.losses.multi_label import (
    class_text_similarity,
    extra_positive_weight,
    multi_label_targets,
    positive_pairs,
    weighted_multi_positive_cross_entropy_sum,
)
from babelseg.losses.pixel_text import pixel_cross_entropy_sum
from babelseg.models.heads.text_classifier import cosine_logits
from babelseg.models.momentum import MomentumEncoder
from babelseg.models.outputs import MS3Output, PixelOutput
from babelseg.models.two_head import TwoHeadPixelModel
from babelseg.recipes.base import LossResult, Recipe, group_by_dataset, pixel_count
from babelseg.recipes.label_matching import union_rows, union_targets
from babelseg.recipes.ms3_settings import MS3Config

TABLE1_PAIRS = 3
"""Named pairs of Table 1: the union classes most alike under the frozen text encoder."""


class MS3Recipe(Recipe):
    """Two-head pixel network trained against union-space language and visual embeddings.

    Args:
        network: Backbone, pixel decoder, language head (width D) and visual head.
        union_texts: The K label texts of the union label space.
        dataset_classes: ``{dataset: [union index of each of its classes]}`` (training datasets).
        language_embeddings: ``float[K, D]`` frozen text embeddings of ``union_texts``.
        settings: The ``recipe.ms3`` switches and schedules.
        prompt: Learnable prompt context (None = the frozen embeddings are T, no M_I stage).
        label_texts: ``{dataset: strings}`` of every known dataset, so prompted embeddings of
            datasets outside the union (held-out ones) can be exported.
        temperature: tau of eq. 1-2 (fixed).
    """

    name = "ms3"
    supported_annotations = frozenset({Annotation.CLEAN, Annotation.NOISY})
    find_unused_parameters = True  # the stage trains the context only, then only the network

    def __init__(
        self,
        *,
        network: TwoHeadPixelModel,
        union_texts: list[str],
        dataset_classes: Mapping[str, list[int]],
        language_embeddings: torch.Tensor,
        settings: MS3Config,
        prompt: PromptLearner | None = None,
        label_texts: Mapping[str, list[str]] | None = None,
        temperature: float = 0.07,
    ) -> None:
        super().__init__()
        s = settings
        if not (s.language or s.visual):
            raise ValueError("recipe.ms3: set at least one of language=true or visual=true.")
        if s.multi_label and not s.language:
            raise ValueError(
                "recipe.ms3.multi_label=true needs language=true: eq. 5 compares the pixel "
                "embeddings with the language embeddings T, which a visual-only run never "
                "aligns with its pixels. Set multi_label=false or language=true."
            )
        if temperature <= 0:
            raise ValueError(f"recipe.temperature must be > 0, got {temperature}.")
        k = len(union_texts)
        if tuple(language_embeddings.shape) != (k, network.embed_dim):
            raise ValueError(
                f"language_embeddings has shape {tuple(language_embeddings.shape)}, expected "
                f"({k}, {network.embed_dim})."
            )
        self.network = network
        self.settings = s
        self.union_texts = list(union_texts)
        self.dataset_classes = {n: list(c) for n, c in dataset_classes.items()}
        self.label_texts = {n: list(t) for n, t in (label_texts or {}).items()}
        self.prompt = prompt if s.language else None
        self.scale = 1.0 / temperature
        self.register_buffer("language_embeddings", F.normalize(language_embeddings.float(), dim=1))
        self.register_buffer("language_frozen", torch.tensor(self.prompt is None))
        pairs = same_group_pairs(list(self.dataset_classes.values()), k)
        self.register_buffer("same_dataset_pairs", pairs, persistent=False)
        self.probe = None  # M_I's stage-only map from frozen decoder features to the text space
        if self.prompt is not None:
            self.probe = nn.Conv2d(network.decoder.dim, network.embed_dim, kernel_size=1)
        bank = {"num_classes": k, "size": s.bank_size}
        self.visual_bank = ClassMemoryBank(**bank, dim=network.visual_dim) if s.visual else None
        self.language_bank = None  # eq. 5's momentum language-head class means
        if s.multi_label:
            self.language_bank = ClassMemoryBank(**bank, dim=network.embed_dim)
        uses_bank = s.visual or s.multi_label
        self.momentum = MomentumEncoder(network, momentum=s.momentum) if uses_bank else None
        self.table1: dict = {}
        if self.prompt is not None and k >= 2:
            with torch.no_grad():  # Table 1 before M_I
                start = self.prompt(self.union_texts)
            texts = self.union_texts
            self.table1 = table1_start(self.language_embeddings, start, texts, count=TABLE1_PAIRS)
        self._pending: list[tuple[ClassMemoryBank, torch.Tensor, torch.Tensor]] = []
        self._visual_now: torch.Tensor | None = None
        self._step = 0
        self.multi_label_pairs: list[list] = []  # Table 8 restored from a checkpoint
        self._last_extras: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ M_I stage and texts
    @property
    def language_stage(self) -> bool:
        """True while the context tokens learn against the frozen network (M_I)."""
        return self.prompt is not None and not bool(self.language_frozen)

    def on_step_start(self, step: int) -> None:
        """At ``step == language_stage_steps``: T computed once with the learned context, kept."""
        self._step = step
        if self.language_stage and step >= self.settings.language_stage_steps:
            with torch.no_grad():
                self.language_embeddings.copy_(self.prompt(self.union_texts))
            self.language_frozen.fill_(True)
            if self.table1:
                pairs = [tuple(p) for p in self.table1["pairs"]]
                after = similarity_summary(self.language_embeddings, self.union_texts, pairs)
                self.table1 = {**self.table1, "after": after, "stage_steps": step}

    def union_language(self) -> torch.Tensor:
        """``float[K, D]`` T: prompted (differentiable) during M_I, fixed afterwards."""
        if self.language_stage:
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

    # ------------------------------------------------------------------ network
    def forward(self, images: torch.Tensor) -> MS3Output:
        """``images float[B, 3, H, W]`` -> language embeddings ``float[B, D, H/4, W/4]`` and
        visual ones; while training also the momentum network's maps, or, during M_I, only the
        frozen decoder features (network in eval mode, no gradient)."""
        if self.training and self.language_stage:
            self.network.eval()
            with torch.no_grad():
                features = self.network.features(images)
            self.network.train()
            empty = features.new_zeros(features.shape[0], 0, *features.shape[-2:])
            return MS3Output(embeddings=empty, features=features)
        out = self.network(images)
        momentum = None
        if self.training and self.momentum is not None:
            momentum = self.momentum(images)
        return MS3Output(
            embeddings=out.language,
            visual_embeddings=out.visual,
            momentum_embeddings=None if momentum is None else momentum.language,
            momentum_visual=None if momentum is None else momentum.visual,
        )

    def semantic_logits(
        self,
        output: PixelOutput,
        text_embeddings: torch.Tensor,
        *,
        dataset: str | None = None,
        pixel_major: bool = False,
    ) -> torch.Tensor:
        """Scaled cosine logits ``float[B, K, h, w]`` (``[B, h, w, K]`` when ``pixel_major``).

        Without the language loss (visual-only ablation) a training dataset is classified by the
        visual head against its classes' visual embeddings V; any other vocabulary by the
        language head against ``text_embeddings``.
        """
        pixels = output.embeddings
        if not self.settings.language and dataset in self.dataset_classes:
            bank = self.visual_bank
            index = torch.tensor(self.dataset_classes[dataset], device=bank.previous.device)
            text_embeddings = bank.previous.index_select(0, index)
            pixels = output.visual_embeddings
        return cosine_logits(pixels, text_embeddings, self.scale, pixel_major=pixel_major)

    def loss_counts(self, batch: Batch) -> dict[str, float]:
        """Labelled pixels of this process (the normaliser of both pairing losses)."""
        return pixel_count(batch)

    # ------------------------------------------------------------------ losses
    def _stage_loss(self, output: MS3Output, batch: Batch, language: torch.Tensor, pixels):
        """Eq. 1 on the probe of the frozen features: trains the context (and the probe)."""
        logits = cosine_logits(self.probe(output.features), language, self.scale)
        total, _ = pixel_cross_entropy_sum(
            logits, union_targets(batch.semantic, batch.datasets, self.dataset_classes)
        )
        value = total / pixels
        logs = {"loss_language_stage": value.detach(), "language_stage": 1.0}
        return LossResult(total=value, per_dataset={"language_stage": value.detach()}, logs=logs)

    def _extra_positives(self, language: torch.Tensor):
        """``({dataset: bool[K_d, K]} positives of eq. 6 or None, weight w)`` at this step."""
        s = self.settings
        weight = extra_positive_weight(
            self._step, start=s.multi_label_start, ramp=s.multi_label_ramp
        )
        if not s.multi_label or weight <= 0:
            return None, 0.0
        bank = self.language_bank
        similarity = class_text_similarity(bank.class_means(), language.detach())
        stable = bank.count >= bank.size
        out = {}
        for name, classes in self.dataset_classes.items():
            index = torch.tensor(classes, device=language.device)
            out[name] = multi_label_targets(
                similarity, index, valid=stable, max_extra=s.multi_label_max_extra,
                recognised_only=s.multi_label_recognised_only,
            )  # fmt: skip
        self._last_extras = out  # read back to the host only when a checkpoint is written
        return out, weight

    def loss(
        self,
        output: MS3Output,
        batch: Batch,
        texts: Mapping[str, torch.Tensor],
        *,
        normalisers: Mapping[str, torch.Tensor | float],
    ) -> LossResult:
        """``(L_l + alpha L_v) / M`` over the batch's M labelled pixels in the union space (eq.
        9 with the multi-label extension); during M_I the stage's eq. 1 on the frozen features.

        Args:
            output: Model output (momentum maps when a bank is in use).
            batch: The collated batch (``semantic int64[B, H, W]``, dataset class indices).
            texts: :meth:`step_texts` of the training datasets (T, per dataset).
            normalisers: ``{"pixels": M}`` (global count / world size).
        """
        if batch.semantic is None:
            raise ValueError("ms3 trains on semantic maps; this batch has none.")
        language = union_rows(texts, self.dataset_classes, self.union_texts).to(
            batch.semantic.device
        )
        if self.language_stage:
            return self._stage_loss(output, batch, language, normalisers["pixels"])
        s = self.settings
        visual = banked = None
        if s.visual:
            visual, banked = self.visual_bank.visual_embeddings(), self.visual_bank.valid()
        extras, weight = self._extra_positives(language)
        pairs = [("language", output.embeddings, language, None, 1.0)] if s.language else []
        if s.visual:  # L_v weighs alpha from step visual_start (0: the paper)
            alpha = s.visual_weight(self._step)
            pairs.append(("visual", output.visual_embeddings, visual, banked, alpha))
        sums = {"language": language.new_zeros(()), "visual": language.new_zeros(())}
        per_dataset: dict[str, torch.Tensor] = {}
        for name, idx in group_by_dataset(batch.datasets).items():
            index = torch.tensor(idx, device=language.device)
            target = batch.semantic.index_select(0, index)
            valid = target != 255
            local = target[valid]
            own = torch.tensor(self.dataset_classes[name], device=local.device)[local]
            extra = None if extras is None else extras[name][local]
            part, mine = language.new_zeros(()), None
            if s.pairing == "dataset":  # diagnostic: the softmax over its own dataset's classes
                mine = torch.zeros(len(language), dtype=torch.bool, device=own.device)
                mine[self.dataset_classes[name]] = True
            for kind, pixels, table, allowed, alpha in pairs:
                mask = mine if allowed is None else allowed if mine is None else allowed & mine
                logits = cosine_logits(pixels.index_select(0, index), table, self.scale)
                if logits.shape[-2:] != target.shape[-2:]:
                    logits = F.interpolate(
                        logits, size=target.shape[-2:], mode="bilinear", align_corners=False
                    )
                flat = logits.permute(0, 2, 3, 1)[valid]
                value = weighted_multi_positive_cross_entropy_sum(
                    flat, own, extra, extra_weight=weight, allowed=mask
                )
                sums[kind] = sums[kind] + alpha * value
                part = part + alpha * value.detach()
            per_dataset[name] = part / valid.sum().clamp(min=1)
        total = (sums["language"] + sums["visual"]) / normalisers["pixels"]
        self._queue_bank_rows(output, batch, visual)
        logs = {
            "loss_language": sums["language"].detach() / normalisers["pixels"],
            "loss_visual": sums["visual"].detach() / normalisers["pixels"],
            "multi_label_weight": weight,
            "language_stage": 0.0,
        }
        pairs = self.same_dataset_pairs  # how alike each dataset's class vectors are
        logs["class_similarity/language"] = within_group_similarity(language, pairs)
        if visual is not None:
            logs["class_similarity/visual"] = within_group_similarity(visual, pairs, banked)
        if extras is not None:
            logs["extra_positives"] = float(sum(int(e.sum()) - len(e) for e in extras.values()))
        return LossResult(total=total, per_dataset=per_dataset, logs=logs)

    def _queue_bank_rows(self, output: MS3Output, batch: Batch, visual) -> None:
        """The momentum maps' rows for the banks (enqueued after the optimizer step)."""
        self._pending, self._visual_now = [], None if visual is None else visual.detach()
        maps = [(self.visual_bank, output.momentum_visual)]
        maps.append((self.language_bank, output.momentum_embeddings))
        for bank, momentum in maps:
            if bank is None or momentum is None:
                continue
            rows, classes = sample_bank_rows(
                momentum,
                batch.semantic,
                [self.dataset_classes[name] for name in batch.datasets],
                per_class=self.settings.bank_pixels,
                seed=0x5EED + self._step,
            )
            self._pending.append((bank, rows.detach(), classes))

    def on_step_end(self, step: int) -> None:
        """After the optimizer step (not during M_I): momentum update, bank enqueue,
        ``V^old``."""
        if self.language_stage:
            return
        if self.momentum is not None:
            self.momentum.update(self.network)
        for bank, rows, classes in self._pending:
            bank.enqueue(rows, classes)
        if self._visual_now is not None and self.visual_bank is not None:
            self.visual_bank.remember(self._visual_now)
        self._pending, self._visual_now = [], None

    def extra_state(self) -> dict:
        """Table 1 (class-text similarities before and after M_I) and Table 8 (the last extra
        positives as ``[dataset, label, other dataset, other label]``) of this run (JSON-safe)."""
        extras, classes = self._last_extras, self.dataset_classes  # no extras yet: restored pairs
        pairs = self.multi_label_pairs if extras is None else positive_pairs(extras, classes)
        state = {"table1": self.table1} if self.table1 else {}
        return state | ({"table8": pairs} if pairs else {})

    def load_extra_state(self, state: Mapping) -> None:
        """Restore :meth:`extra_state`."""
        if state.get("table1"):
            self.table1 = dict(state["table1"])
        self.multi_label_pairs = [list(p) for p in state.get("table8", [])]
