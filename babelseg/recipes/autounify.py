"""The ``autounify`` recipe (AutoUniSeg.txt): a learned unified label space.

Training runs in three parts, driven by the trainer's step hooks:

1. **Warm-up** (``warmup_steps``): every dataset has its own classifier (cosine similarity with
   its label texts, as in ``sentence``). Over the second half, each dataset's classifier labels
   the other datasets' images; :mod:`babelseg.unify.node_count` turns these label-to-label
   associations into the initial unified classes (their number N and mappings), which
   initialise the label graph's unified nodes and adjacency (``num_unified > 0`` overrides N).
2. **Alternation**: phases of ``alternate_every`` steps; the segmentation network trains with the
   graph frozen and boolean mappings (unbalanced OT, recomputed every ``remap_every`` steps),
   then the graph network trains with the segmentation network frozen and the continuous
   adjacency as mappings, plus the orthogonality loss (eq. 7-8).
3. **Pruning** (last step): unified nodes mapped to no label are dropped; nodes whose mappings
   agree in every dataset (identical supervision everywhere) are merged into one class.

UniSegHead (eq. 4-5, :mod:`babelseg.unify.head`) scores the pixels against the unified nodes and
maps them to each dataset's labels, then per-pixel cross-entropy in that dataset's label space
(eq. 6). The cross-dataset validation lives in :mod:`babelseg.unify.cross_validation`.

Zero-shot route (``semantic_logits`` with ``dataset`` None or unknown): every unified class
shares its probability among the asked texts by ``softmax_k(cos(t_k, f_r) / zero_shot_tau)``,
where ``f_r`` is the text feature, among the labels the class maps to, closest to ``t_k``; the
score of text k is ``log sum_r p(r | pixel) p(k | r)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from babelseg.data.collate import Batch
from babelseg.data.sample import Annotation
from babelseg.labels.space import LabelSpace
from babelseg.losses.pixel_text import pixel_cross_entropy_sum
from babelseg.models.heads.text_classifier import cosine_logits
from babelseg.models.outputs import PixelOutput
from babelseg.models.pixel_model import PixelEmbeddingModel
from babelseg.recipes.base import (
    LossResult,
    Recipe,
    RecipeContext,
    group_by_dataset,
    pixel_count,
    pixel_network,
)
from babelseg.unify.cross_validation import (
    accumulate_associations,
    empty_associations,
    load_associations,
    sum_over_processes,
    text_similarity,
)
from babelseg.unify.graph import GraphOutput, LabelGraph
from babelseg.unify.head import UniSegHead, mapped_logits, orthogonality_loss, zero_shot_logits
from babelseg.unify.node_count import initial_unified_classes
from babelseg.unify.taxonomy import UnifiedClass, unified_classes
from babelseg.unify.transport import NO_LABEL, boolean_mapping


@dataclass
class AutoUnifyConfig:
    """``autounify`` settings (AutoUniSeg.txt).

    Attributes:
        num_unified: Initial unified nodes; 0 derives it from cross-dataset validation.
        graph_layers: GraphSAGE layers.
        orthogonality_weight: Weight of the orthogonality loss (eq. 7-8).
        alternate_every: Steps per phase of the alternating training.
        remap_every: Steps between recomputations of the boolean mappings.
        warmup_steps: Steps with per-dataset classifiers before the graph takes over (the
            cross-dataset validation that sets N runs over their second half).
        adjacency_scale: Multiplier of the learnable adjacency logits: how fast the graph phases
            move the edges (the initial edges do not depend on it).
        min_share: Cross-dataset validation: containment both ways for two labels to merge.
        min_match: Cross-dataset validation: containment a class needs to map to a label of a
            dataset it has no member in.
        min_presence: Cross-dataset validation: how often (relative to its own dataset) a
            class must be detected in another dataset's images to map to one of its labels.
        text_weight: Cross-dataset validation: bonus of near-identical label texts in merges.
        text_floor: Text cosine similarity below which there is no bonus.
        orthogonality_tau: Temperature of the orthogonality loss.
        zero_shot_tau: Temperature of the zero-shot route (other vocabularies).
    """

    num_unified: int = 0
    graph_layers: int = 2
    orthogonality_weight: float = 0.1
    alternate_every: int = 100
    remap_every: int = 200
    warmup_steps: int = 600
    adjacency_scale: float = 40.0
    min_share: float = 0.3
    min_match: float = 0.3
    min_presence: float = 0.15
    text_weight: float = 0.5
    text_floor: float = 0.6
    orthogonality_tau: float = 0.1
    zero_shot_tau: float = 0.05


INITIAL_EDGE_LOGIT = 5.0
"""Scaled adjacency logit of the edges the cross-dataset validation maps (others start at 0)."""


@dataclass
class UnifyOutput(PixelOutput):
    """The pixel embeddings, plus what the loss needs from the recipe's own parameters in
    training: computed in ``forward`` so that DistributedDataParallel finds every parameter a
    step uses.

    Attributes:
        scale: 0-d ``1 / tau`` of the head (None in eval mode).
        graph: The label graph's output in the segmentation and graph phases (None in the
            warm-up and in eval mode).
    """

    scale: torch.Tensor | None = None
    graph: GraphOutput | None = None


class AutoUnifyRecipe(Recipe):
    """Segmentation network + label graph + UniSegHead, trained in alternation.

    Args:
        model: The pixel-embedding network (embedding dim = text dim D).
        label_spaces: The training datasets' label spaces, in sampler order.
        label_embeddings: ``{dataset: float[K_d, D]}`` text features of their labels.
        total_steps: The run's training steps (pruning happens after the last).
        num_unified: Initial unified nodes; 0 derives N from cross-dataset validation.
        graph_layers: GraphSAGE layers.
        orthogonality_weight: lambda_2 of eq. 8 (lambda_1 = 1).
        alternate_every: Steps per phase of the alternation.
        remap_every: Steps between recomputations of the boolean mappings.
        warmup_steps: Steps of per-dataset classifiers before the graph takes over.
        temperature: Initial tau of the cosine logits.
        adjacency_scale: Multiplier of the adjacency logits (see :class:`LabelGraph`).
        min_share / min_match / min_presence: Thresholds of :func:`initial_unified_classes`.
        text_weight / text_floor: Text-similarity bonus of the merges (:func:`text_bonus`).
        orthogonality_tau: Temperature of the orthogonality loss.
        zero_shot_tau: Temperature of the zero-shot route (module docstring).
    """

    name = "autounify"
    supported_annotations = frozenset({Annotation.CLEAN, Annotation.NOISY})
    find_unused_parameters = True  # the graph is idle in the warm-up and segmentation phases

    def __init__(
        self,
        *,
        model: PixelEmbeddingModel,
        label_spaces: Mapping[str, LabelSpace],
        label_embeddings: Mapping[str, torch.Tensor],
        total_steps: int,
        num_unified: int = 0,
        graph_layers: int = 2,
        orthogonality_weight: float = 0.1,
        alternate_every: int = 100,
        remap_every: int = 200,
        warmup_steps: int = 600,
        temperature: float = 0.07,
        adjacency_scale: float = 40.0,
        min_share: float = 0.3,
        min_match: float = 0.3,
        min_presence: float = 0.15,
        text_weight: float = 0.5,
        text_floor: float = 0.6,
        orthogonality_tau: float = 0.1,
        zero_shot_tau: float = 0.05,
    ) -> None:
        super().__init__()
        if not label_spaces:
            raise ValueError("autounify needs the training datasets' label spaces (data.train).")
        missing = [n for n in label_spaces if n not in label_embeddings]
        if missing:
            raise ValueError(f"autounify: no label texts for datasets {missing}.")
        if alternate_every < 1 or remap_every < 1:
            raise ValueError(
                f"alternate_every ({alternate_every}) and remap_every ({remap_every}) must be >= 1."
            )
        self.model = model
        self.head = UniSegHead(temperature=temperature)
        self.datasets = list(label_spaces)
        self.spaces = dict(label_spaces)
        self.sizes = {n: len(s) for n, s in label_spaces.items()}
        feats = torch.cat([label_embeddings[n].float() for n in self.datasets], dim=0)
        owner = torch.cat(
            [torch.full((self.sizes[n],), i, dtype=torch.long) for i, n in enumerate(self.datasets)]
        )
        self.offsets = dict(zip(self.datasets, np.cumsum([0] + list(self.sizes.values()))[:-1]))
        self.override = num_unified
        slots = num_unified if num_unified > 0 else len(feats)
        self.graph = LabelGraph(
            label_features=feats,
            label_dataset=owner,
            num_unified=slots,
            num_layers=graph_layers,
            adjacency_scale=adjacency_scale,
        )
        self.total_steps = total_steps
        self.orthogonality_weight = orthogonality_weight
        self.alternate_every = alternate_every
        self.remap_every = remap_every
        self.warmup_steps = max(0, min(warmup_steps, total_steps - 1))
        self.min_share, self.min_match, self.min_presence = min_share, min_match, min_presence
        self.text_weight, self.text_floor = text_weight, text_floor
        self.orthogonality_tau, self.zero_shot_tau = orthogonality_tau, zero_shot_tau
        # state (JSON-safe in extra_state)
        self.initialised = False
        self.active = [False] * slots
        self.assign: dict[str, list[int]] = {}
        self.class_of_slot: list[int] | None = None
        self.phase = "warmup"
        # cross-dataset validation (see _accumulate): argmax counts and probability mass
        self.assoc = empty_associations(self.sizes)
        self.assoc_soft = empty_associations(self.sizes)
        self._trainable: dict[str, bool] | None = None
        self._step = 0

    # ------------------------------------------------------------------ state
    @property
    def num_slots(self) -> int:
        return self.graph.num_unified

    def _active_tensor(self, device: torch.device) -> torch.Tensor:
        return torch.tensor(self.active, dtype=torch.bool, device=device)

    def extra_state(self) -> dict:
        """Mappings, active nodes, pruning, phase and the warm-up associations (JSON-safe)."""
        return {
            "initialised": self.initialised,
            "active": list(self.active),
            "assign": {n: list(map(int, a)) for n, a in self.assign.items()},
            "class_of_slot": self.class_of_slot,
            "phase": self.phase,
            "assoc": {b: {a: m.tolist() for a, m in r.items()} for b, r in self.assoc.items()},
            "assoc_soft": {
                b: {a: m.tolist() for a, m in r.items()} for b, r in self.assoc_soft.items()
            },
        }

    def load_extra_state(self, state: Mapping) -> None:
        """Restore :meth:`extra_state` (eval/predict use the saved final mappings)."""
        if not state:
            return
        self.initialised = bool(state.get("initialised", False))
        active = list(state.get("active", self.active))
        if len(active) != self.num_slots:
            raise ValueError(
                f"Saved autounify state has {len(active)} unified slots, this model "
                f"{self.num_slots}; load it with the config it was trained with."
            )
        self.active = [bool(a) for a in active]
        self.assign = {n: [int(v) for v in a] for n, a in state.get("assign", {}).items()}
        cls = state.get("class_of_slot")
        self.class_of_slot = None if cls is None else [int(c) for c in cls]
        self.phase = str(state.get("phase", "warmup"))
        load_associations(self.assoc, state.get("assoc", {}), self.sizes)
        load_associations(self.assoc_soft, state.get("assoc_soft", {}), self.sizes)

    # ------------------------------------------------------------------ schedule hooks
    def _phase_of(self, step: int) -> str:
        if step < self.warmup_steps or not self.initialised:
            return "warmup"
        return (
            "segmentation"
            if ((step - self.warmup_steps) // self.alternate_every) % 2 == 0
            else "graph"
        )

    def on_step_start(self, step: int) -> None:
        """Freeze the network that does not train in this step's phase; remap on schedule."""
        if self._trainable is None:  # respect parameters frozen by the trainer
            self._trainable = {n: p.requires_grad for n, p in self.named_parameters()}
        self._step = step
        self.phase = self._phase_of(step)
        graph_on = self.phase == "graph"
        seg_on = self.phase != "graph"
        for name, p in self.named_parameters():
            if name.startswith("graph."):
                p.requires_grad_(graph_on and self._trainable[name])
            elif name.startswith("model."):
                p.requires_grad_(seg_on and self._trainable[name])
        if self.training:
            self.model.train(seg_on)
        since = step - self.warmup_steps
        if self.initialised and since >= 0 and since % self.remap_every == 0:
            self.remap()

    def on_step_end(self, step: int) -> None:
        """End of warm-up: derive the unified classes; last step: final mappings and pruning."""
        if step == self.warmup_steps - 1 or (self.warmup_steps == 0 and step == 0):
            self.initialise_unified()
        if step == self.total_steps - 1:
            if not self.initialised:
                self.initialise_unified()
            self.remap()
            self.prune()

    # ------------------------------------------------------------------ unified classes
    def initialise_unified(self) -> None:
        """Cross-dataset validation -> initial unified classes -> graph init and mappings."""
        device = self.graph.edge_logits.device  # nccl reduces CUDA tensors, gloo CPU ones
        for assoc in (self.assoc, self.assoc_soft):
            sum_over_processes(assoc, self.reduce_sum, device)
        classes = initial_unified_classes(
            self.assoc,
            self.datasets,
            soft=self.assoc_soft,
            min_share=self.min_share,
            min_match=self.min_match,
            min_presence=self.min_presence,
            text_similarity=text_similarity(self.graph.label_features, self.offsets, self.sizes),
            text_weight=self.text_weight,
            text_floor=self.text_floor,
        )
        n = self.override if self.override > 0 else len(classes)
        n = min(n, self.num_slots)
        logits = torch.zeros(self.num_slots, self.graph.num_labels)
        feats = self.graph.unified_features.detach().clone()
        text = self.graph.label_features
        for r, mapping in enumerate(classes[:n]):
            cols = [int(self.offsets[d]) + c for d, c in mapping.items() if c is not None]
            # a mapped edge starts e^5 (~150) times as heavy as any other edge of its dataset,
            # whatever adjacency_scale (which sets how fast the graph phases move the edges)
            logits[r, cols] = INITIAL_EDGE_LOGIT / self.graph.adjacency_scale
            feats[r] = text[cols].mean(0)
        self.graph.initialise(edge_logits=logits, unified_features=feats)
        self.active = [r < n for r in range(self.num_slots)]
        self.initialised = True
        self.class_of_slot = None
        self.remap()

    @torch.no_grad()
    def remap(self) -> None:
        """Boolean mappings of every dataset from the current adjacency (unbalanced OT)."""
        adj = self.graph.adjacency().detach().cpu().numpy()
        active = np.asarray(self.active, bool)
        for name in self.datasets:
            start = int(self.offsets[name])
            part = adj[:, start : start + self.sizes[name]]
            self.assign[name] = boolean_mapping(part, active=active).tolist()

    def prune(self) -> None:
        """Drop nodes mapped to nothing; merge nodes with identical mappings everywhere."""
        signatures: dict[tuple[int, ...], int] = {}
        self.class_of_slot = []
        for r in range(self.num_slots):
            sig = tuple(self.assign[n][r] for n in self.datasets) if self.active[r] else ()
            if not self.active[r] or all(v == NO_LABEL for v in sig):
                self.active[r] = False
                self.class_of_slot.append(-1)
                continue
            self.class_of_slot.append(signatures.setdefault(sig, len(signatures)))

    def mapping(self, dataset: str, device: torch.device | None = None) -> torch.Tensor:
        """Boolean mapping of ``dataset`` as ``float[N, K]`` (unmapped and inactive rows 0)."""
        m = torch.zeros(self.num_slots, self.sizes[dataset], device=device)
        for r, c in enumerate(self.assign[dataset]):
            if c != NO_LABEL and self.active[r]:
                m[r, c] = 1.0
        return m

    def continuous_mapping(self, adjacency: torch.Tensor, dataset: str) -> torch.Tensor:
        """``float[N, K]``: the columns of ``dataset`` in the continuous adjacency."""
        start = int(self.offsets[dataset])
        return adjacency[:, start : start + self.sizes[dataset]]

    def classes(self) -> list[UnifiedClass]:
        """The learned unified classes (after pruning: merged; before: one per active node)."""
        slots = [r for r in range(self.num_slots) if self.active[r]]
        names = {n: self.spaces[n].names for n in self.datasets}
        return unified_classes(
            {n: [self.assign[n][r] for r in slots] for n in self.datasets},
            names,
            None if self.class_of_slot is None else [self.class_of_slot[r] for r in slots],
        )

    def unified_space(self) -> LabelSpace:
        """The unified classes as a label space (readable names; descriptions list the labels)."""
        if not self.initialised:
            raise ValueError(
                "This autounify model has no unified classes yet (stopped during the warm-up); "
                "train past recipe.autounify.warmup_steps."
            )
        entries = []
        for c in self.classes():
            labels = ", ".join(f"{d}: {lab}" for d, lab in c.labels.items() if lab is not None)
            entries.append(f"{c.name}: {labels}")
        return LabelSpace.from_names(entries, name="unified")

    def _slot_to_class(self, device: torch.device) -> torch.Tensor:
        """``float[N, C]``: which unified class each slot belongs to."""
        cls = self.class_of_slot
        if cls is None:
            act = [r for r in range(self.num_slots) if self.active[r]]
            cls = [act.index(r) if r in act else -1 for r in range(self.num_slots)]
        num = max(cls) + 1 if cls else 0
        m = torch.zeros(self.num_slots, num, device=device)
        for r, c in enumerate(cls):
            if c >= 0:
                m[r, c] = 1.0
        return m

    # ------------------------------------------------------------------ forward / logits
    def forward(self, images: torch.Tensor) -> UnifyOutput:
        """``images float[B, 3, H, W]`` -> :class:`UnifyOutput` (``embeddings float[B, D, H/4,
        W/4]``; in training also the head's scale and, after the warm-up, the graph's output)."""
        out = self.model(images)
        if not self.training:
            return UnifyOutput(embeddings=out.embeddings)
        graph = None
        if self.initialised and self.phase != "warmup":
            graph = self._unified(out.embeddings.device, grad=self.phase == "graph")
        return UnifyOutput(embeddings=out.embeddings, scale=self.head.temperature(), graph=graph)

    def _unified(self, device: torch.device, grad: bool):
        with torch.set_grad_enabled(grad):
            return self.graph(self._active_tensor(device))

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
            text_embeddings: ``float[K, D]`` texts of the vocabulary asked for.
            dataset: A training dataset (its mapping is used when ``text`` has its K labels);
                ``"unified"`` for the unified classes (``text`` is then ignored); None or any
                other name for the zero-shot route.
            pixel_major: Return ``[B, h, w, K]`` instead.
        Returns:
            ``float[B, K, h, w]``.
        """
        emb = output.embeddings
        if not self.initialised:
            if dataset == "unified":
                self.unified_space()  # raises with the fix
            logits = cosine_logits(emb, text_embeddings, self.head.temperature())
        else:
            graph = self._unified(emb.device, grad=False)
            unified = self.head.unified_logits(emb, graph.unified)
            if dataset == "unified":
                logits = mapped_logits(unified, self._slot_to_class(emb.device))
            elif dataset in self.sizes and len(text_embeddings) == self.sizes[dataset]:
                logits = mapped_logits(unified, self.mapping(dataset, emb.device))
            else:
                logits = self._zero_shot(unified, text_embeddings.to(emb))
        return logits.permute(0, 2, 3, 1) if pixel_major else logits

    def _zero_shot(self, unified: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """``float[B, N, h, w]`` unified logits -> ``float[B, K, h, w]`` for any texts."""
        feats = F.normalize(self.graph.label_features, dim=1)
        sim = F.normalize(text, dim=1) @ feats.t()  # [K, L]
        slot_labels = [
            [
                int(self.offsets[n]) + self.assign[n][r]
                for n in self.datasets
                if self.assign[n][r] != NO_LABEL and self.active[r]
            ]
            for r in range(self.num_slots)
        ]
        active = self._active_tensor(text.device)
        return zero_shot_logits(unified, text, sim, slot_labels, active, tau=self.zero_shot_tau)

    # ------------------------------------------------------------------ loss
    def loss_counts(self, batch: Batch) -> dict[str, float]:
        """This process's normaliser count: labelled pixels."""
        return pixel_count(batch)

    def _accumulate(
        self, emb: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, source: str, texts
    ) -> None:
        """:func:`~babelseg.unify.cross_validation.accumulate_associations` into this recipe's
        associations, with the head's temperature."""
        accumulate_associations(
            self.assoc,
            self.assoc_soft,
            emb,
            target,
            valid,
            source=source,
            texts=texts,
            scale=self.head.temperature(),
            sizes=self.sizes,
        )

    def loss(
        self,
        output: PixelOutput,
        batch: Batch,
        texts: Mapping[str, torch.Tensor],
        *,
        normalisers: Mapping[str, torch.Tensor | float],
    ) -> LossResult:
        """Warm-up: per-dataset cosine classifiers. Then eq. 6 (+ eq. 7 in graph phases).

        Args:
            output: Model output for the batch.
            batch: The collated batch (``semantic int64[B, H, W]``).
            texts: ``{dataset: float[K_d, D]}`` label text embeddings.
            normalisers: ``{"pixels": M}`` (global labelled pixels / world size).
        """
        emb = output.embeddings
        if batch.semantic is None:
            raise ValueError("autounify trains on semantic maps; this batch has none.")
        per_dataset: dict[str, torch.Tensor] = {}
        logs: dict[str, float] = {}
        total = emb.new_zeros(())
        phase = self.phase if self.initialised else "warmup"
        # taken from the forward pass when it computed them (DDP must see every used parameter)
        scale = output.scale if isinstance(output, UnifyOutput) else None
        scale = self.head.temperature() if scale is None else scale
        if phase != "warmup":
            graph = output.graph if isinstance(output, UnifyOutput) else None
            if graph is None:
                graph = self._unified(emb.device, grad=phase == "graph")
            unified_all = self.head.unified_logits(emb, graph.unified, scale)
        for name, idx in group_by_dataset(batch.datasets).items():
            if name not in self.sizes:
                raise ValueError(
                    f"Batch has dataset '{name}', which autounify was not built for "
                    f"({self.datasets})."
                )
            index = torch.tensor(idx, device=emb.device)
            target = batch.semantic.index_select(0, index)
            part_emb = emb.index_select(0, index)
            if phase == "warmup":
                logits = cosine_logits(part_emb, texts[name], scale)
                if self.warmup_steps > 0 and self._collecting:
                    valid = batch.valid.index_select(0, index)
                    self._accumulate(part_emb.detach(), target, valid, name, texts)
            else:
                unified = unified_all.index_select(0, index)
                if phase == "graph":
                    mapping = self.continuous_mapping(graph.adjacency, name)
                else:
                    mapping = self.mapping(name, emb.device)
                logits = mapped_logits(unified, mapping)
            part, count = pixel_cross_entropy_sum(logits, target)
            total = total + part
            per_dataset[name] = (part / count.clamp(min=1)).detach()
        total = total / normalisers["pixels"]
        if phase == "graph" and self.orthogonality_weight > 0:
            act = self._active_tensor(emb.device)
            orth = orthogonality_loss(graph.unified[act], self.orthogonality_tau)
            total = total + self.orthogonality_weight * orth
            logs["orthogonality"] = float(orth.detach())
        logs["phase_graph"] = float(phase == "graph")
        logs["unified_active"] = float(sum(self.active))
        logs["temperature"] = float(1.0 / scale.detach())
        return LossResult(total=total, per_dataset=per_dataset, logs=logs)

    @property
    def _collecting(self) -> bool:
        """Associations are gathered over the second half of the warm-up."""
        return self._step >= self.warmup_steps // 2


def build_autounify_recipe(section: AutoUnifyConfig, *, context: RecipeContext) -> AutoUnifyRecipe:
    """The ``autounify`` recipe (AutoUniSeg.txt) over the run's training datasets."""
    if not context.train_datasets:
        raise ValueError(
            "recipe.name=autounify needs the training datasets' label spaces; build it through "
            "the trainer or Predictor.from_checkpoint (a RecipeContext with train_datasets)."
        )
    names = list(context.train_datasets)
    return AutoUnifyRecipe(
        model=pixel_network(context),
        label_spaces={n: context.label_spaces[n] for n in names},
        label_embeddings={n: context.texts[n] for n in names},
        total_steps=context.total_steps,
        num_unified=section.num_unified,
        graph_layers=section.graph_layers,
        orthogonality_weight=section.orthogonality_weight,
        alternate_every=section.alternate_every,
        remap_every=section.remap_every,
        warmup_steps=section.warmup_steps,
        temperature=context.temperature,
        adjacency_scale=section.adjacency_scale,
        min_share=section.min_share,
        min_match=section.min_match,
        min_presence=section.min_presence,
        text_weight=section.text_weight,
        text_floor=section.text_floor,
        orthogonality_tau=section.orthogonality_tau,
        zero_shot_tau=section.zero_shot_tau,
    )
