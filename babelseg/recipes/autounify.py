"""The ``autounify`` recipe (AutoUniSeg.txt): a learned unified label space.

Training runs in three parts, driven by the trainer's step hooks:

1. **Warm-up** (``warmup_steps``): every dataset has its own cosine classifier (as in
   ``sentence``). Over its second half, each dataset's classifier labels the other datasets'
   images (:mod:`babelseg.unify.cross_validation`); the associations give the initial unified
   classes (N and mappings; ``num_unified > 0`` overrides N) that initialise the label graph.
2. **Alternation**: phases of ``alternate_every`` steps; the segmentation network trains with the
   graph frozen and boolean mappings (unbalanced OT, recomputed every ``remap_every`` steps),
   then the graph network trains with the segmentation network frozen and the continuous
   adjacency as mappings, plus the orthogonality loss (eq. 7-8).
3. **Final stage** (the last ``final_steps``): before its first step the boolean mappings are
   computed one last time and pruned: unified nodes mapped to no label are dropped; nodes whose
   mappings agree in every dataset (identical supervision everywhere) are merged into one class.
   The graph is frozen and the segmentation network trains under exactly these mappings and
   unified embeddings, which evaluation, prediction and ``babelseg unify`` use afterwards (the
   authors' released code ends the same way). ``final_steps: 0`` fixes and prunes the mappings
   after the last step instead.

UniSegHead (eq. 4-5, :mod:`babelseg.unify.head`) scores the pixels against the unified nodes and
maps them to each dataset's labels, then per-pixel cross-entropy in that label space (eq. 6).
Eq. 5 and eq. 7 each have the printed form and the current one as options
(``dataset_logits``, ``graph_loss``; see :class:`AutoUnifyConfig`).
Any other vocabulary takes the zero-shot route of :func:`~babelseg.unify.head.zero_shot_logits`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from babelseg.data.collate import Batch
from babelseg.data.sample import Annotation
from babelseg.labels.space import LabelSpace
from babelseg.losses.pixel_text import pixel_cross_entropy_sum
from babelseg.models.heads.text_classifier import cosine_logits
from babelseg.models.outputs import PixelOutput
from babelseg.models.pixel_model import PixelEmbeddingModel
from babelseg.recipes.autounify_config import AutoUnifyConfig
from babelseg.recipes.base import (
    LossResult,
    Recipe,
    RecipeContext,
    group_by_dataset,
    pixel_count,
    pixel_network,
)
from babelseg.unify.cross_validation import CrossDatasetValidation
from babelseg.unify.graph import LabelGraph
from babelseg.unify.head import UnifyOutput, UniSegHead, graph_loss, zero_shot_logits
from babelseg.unify.mappings import SlotMappings
from babelseg.unify.schedule import AlternationSchedule


class AutoUnifyRecipe(Recipe):
    """Segmentation network + label graph + UniSegHead, trained in alternation.

    Args:
        model: The pixel-embedding network (embedding dim = text dim D).
        label_spaces: The training datasets' label spaces, in sampler order.
        label_embeddings: ``{dataset: float[K_d, D]}`` text features of their labels.
        total_steps: The run's training steps (pruning happens after the last).
        temperature: Initial tau of the cosine logits.
        settings: Everything else (:class:`AutoUnifyConfig`).
        encode_names: Encodes label names (``[L strings] -> float[L, D']``) for the
            cross-dataset validation's bonus for near-identical label names; called once, when
            the unified classes are derived. None: the bonus reads ``label_embeddings``, which
            in the ``dataset`` text modes also differ by the dataset's name in the sentence.
    """

    name = "autounify"
    supported_annotations = frozenset({Annotation.CLEAN, Annotation.NOISY})
    find_unused_parameters = True  # the graph is idle in the warm-up and segmentation phases
    has_unified_space = True

    def __init__(
        self,
        *,
        model: PixelEmbeddingModel,
        label_spaces: Mapping[str, LabelSpace],
        label_embeddings: Mapping[str, torch.Tensor],
        total_steps: int,
        temperature: float = 0.07,
        settings: AutoUnifyConfig | None = None,
        encode_names: Callable[[Sequence[str]], torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        cfg = settings or AutoUnifyConfig()
        if not label_spaces:
            raise ValueError("autounify needs the training datasets' label spaces (data.train).")
        missing = [n for n in label_spaces if n not in label_embeddings]
        if missing:
            raise ValueError(f"autounify: no label texts for datasets {missing}.")
        self.model = model
        self.head = UniSegHead(temperature=temperature, dataset_logits=cfg.dataset_logits)
        self.datasets = list(label_spaces)
        self.sizes = {n: len(s) for n, s in label_spaces.items()}
        feats = torch.cat([label_embeddings[n].float() for n in self.datasets], dim=0)
        owner = torch.cat(
            [torch.full((self.sizes[n],), i, dtype=torch.long) for i, n in enumerate(self.datasets)]
        )
        slots = cfg.num_unified if cfg.num_unified > 0 else len(feats)
        self.graph = LabelGraph(
            label_features=feats,
            label_dataset=owner,
            num_unified=slots,
            num_layers=cfg.graph_layers,
            adjacency_scale=cfg.adjacency_scale,
        )
        self.settings = cfg
        self.total_steps = total_steps
        self.schedule = AlternationSchedule(
            warmup_steps=max(0, min(cfg.warmup_steps, total_steps - 1)),
            alternate_every=cfg.alternate_every,
            remap_every=cfg.remap_every,
            total_steps=total_steps,
            final_steps=cfg.final_steps,
        )
        self.slots = SlotMappings(spaces=label_spaces, num_slots=slots)
        self.offsets = self.slots.offsets
        self.phase = "warmup"
        self.validation = CrossDatasetValidation(self.sizes)
        self.encode_names = encode_names
        self._trainable: dict[str, bool] | None = None
        self._step = 0

    def extra_state(self) -> dict:
        """Mappings, active nodes, pruning, phase and the warm-up associations (JSON-safe)."""
        return {**self.slots.state(), "phase": self.phase, **self.validation.state()}

    def load_extra_state(self, state: Mapping) -> None:
        """Restore :meth:`extra_state` (eval/predict use the saved final mappings)."""
        if state:
            self.slots.load_state(state)
            self.phase = str(state.get("phase", "warmup"))
            self.validation.load_state(state)

    # ------------------------------------------------------------------ schedule hooks
    def on_step_start(self, step: int) -> None:
        """Freeze the network that does not train in this step's phase; remap on schedule; fix
        and prune the mappings before the final stage's first step."""
        if self._trainable is None:  # respect parameters frozen by the trainer
            self._trainable = {n: p.requires_grad for n, p in self.named_parameters()}
        self._step = step
        self.phase = self.schedule.phase(step, initialised=self.slots.initialised)
        graph_on = self.phase == "graph"
        seg_on = self.phase != "graph"
        for name, p in self.named_parameters():
            if name.startswith("graph."):
                p.requires_grad_(graph_on and self._trainable[name])
            elif name.startswith("model."):
                p.requires_grad_(seg_on and self._trainable[name])
        if self.training:
            self.model.train(seg_on)
        if self.phase == "final" and not self.finalised:
            self.finalise()
        elif self.slots.initialised and self.schedule.remaps_before(step):
            self.remap()

    def on_step_end(self, step: int) -> None:
        """End of warm-up: derive the unified classes; last step without a final stage (or too
        short a run to reach it): final mappings and pruning."""
        if self.schedule.initialises_after(step):
            self.initialise_unified()
        if step == self.total_steps - 1 and not self.finalised:
            if not self.slots.initialised:
                self.initialise_unified()
            self.finalise()

    # ------------------------------------------------------------------ unified classes
    def initialise_unified(self) -> None:
        """Cross-dataset validation -> initial unified classes -> graph init and mappings."""
        c = self.settings
        classes = self.validation.unified_classes(
            reduce_sum=self.reduce_sum,
            device=self.graph.edge_logits.device,  # nccl reduces CUDA tensors, gloo CPU ones
            label_features=self._name_features(),
            offsets=self.offsets,
            thresholds=dict(
                min_share=c.min_share,
                min_match=c.min_match,
                min_presence=c.min_presence,
                text_weight=c.text_weight,
                text_floor=c.text_floor,
                merge_rule=c.merge_rule,
            ),
        )
        n = self.settings.num_unified if self.settings.num_unified > 0 else len(classes)
        n = min(n, self.slots.num_slots)
        self.graph.initialise_from_classes(classes[:n], self.offsets)
        self.slots.start(n)
        self.remap()

    @torch.no_grad()
    def _name_features(self) -> torch.Tensor:
        """``float[L, D']`` features of the label names, datasets in order (the graph's label
        text features when no name encoder was given)."""
        if self.encode_names is None:
            return self.graph.label_features
        names = [name for n in self.datasets for name in self.slots.spaces[n].names]
        return self.encode_names(names).float()

    @property
    def finalised(self) -> bool:
        """Whether the final mappings are fixed (pruned): they no longer change."""
        return self.slots.class_of_slot is not None

    @torch.no_grad()
    def remap(self) -> None:
        """Boolean mappings of every dataset from the current adjacency (unbalanced OT); once
        :attr:`finalised`, the fixed final mappings stay (they are what the final stage trained
        with)."""
        if not self.finalised:
            self.slots.remap(self.graph.adjacency().detach().cpu().numpy())

    def prune(self) -> None:
        """Drop nodes mapped to nothing (and, with ``drop_redundant``, nodes with no label of
        their own); merge nodes with identical mappings everywhere."""
        self.slots.prune(drop_redundant=self.settings.drop_redundant)

    def finalise(self) -> None:
        """The final mappings: one last remap from the adjacency, then pruning."""
        self.remap()
        self.prune()

    def unified_space(self) -> LabelSpace:
        """The unified classes as a label space (readable names; descriptions list the labels)."""
        return self.slots.unified_space()

    # ------------------------------------------------------------------ forward / logits
    def forward(self, images: torch.Tensor) -> UnifyOutput:
        """``float[B, 3, H, W]`` -> ``embeddings float[B, D, H/4, W/4]`` (+ in training the head's
        scale and, after the warm-up, the graph's output)."""
        out = self.model(images)
        if not self.training:
            return UnifyOutput(embeddings=out.embeddings)
        graph = None
        if self.slots.initialised and self.phase != "warmup":
            graph = self._unified(out.embeddings.device, grad=self.phase == "graph")
        return UnifyOutput(embeddings=out.embeddings, scale=self.head.temperature(), graph=graph)

    def _unified(self, device: torch.device, grad: bool):
        with torch.set_grad_enabled(grad):
            return self.graph(self.slots.active_tensor(device))

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
            dataset: A training dataset (its mapping, when ``text`` has its K labels);
                ``"unified"`` (``text`` ignored); None or any other: the zero-shot route.
            pixel_major: Return ``[B, h, w, K]`` instead.
        Returns:
            ``float[B, K, h, w]``.
        """
        emb = output.embeddings
        if not self.slots.initialised:
            if dataset == "unified":
                self.unified_space()  # raises with the fix
            logits = cosine_logits(emb, text_embeddings, self.head.temperature())
        else:
            graph = self._unified(emb.device, grad=False)
            unified = self.head.unified_logits(emb, graph.unified)
            if dataset == "unified":
                logits = self.head.to_dataset(unified, self.slots.slot_to_class(emb.device))
            elif dataset in self.sizes and len(text_embeddings) == self.sizes[dataset]:
                logits = self.head.to_dataset(unified, self.slots.mapping(dataset, emb.device))
            else:
                logits = self._zero_shot(unified, text_embeddings.to(emb))
        return logits.permute(0, 2, 3, 1) if pixel_major else logits

    def _zero_shot(self, unified: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """``float[B, N, h, w]`` unified logits -> ``float[B, K, h, w]`` for any texts."""
        feats = F.normalize(self.graph.label_features, dim=1)
        sim = F.normalize(text, dim=1) @ feats.t()  # [K, L]
        active = self.slots.active_tensor(text.device)
        return zero_shot_logits(
            unified, text, sim, self.slots.slot_labels(), active, tau=self.settings.zero_shot_tau
        )

    # ------------------------------------------------------------------ loss
    def loss_counts(self, batch: Batch) -> dict[str, float]:
        """This process's normaliser count: labelled pixels."""
        return pixel_count(batch)

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
        phase = self.phase if self.slots.initialised else "warmup"
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
                if self.schedule.collecting(self._step):
                    valid = batch.valid.index_select(0, index)
                    self.validation.accumulate(
                        part_emb.detach(),
                        target,
                        valid,
                        source=name,
                        texts=texts,
                        scale=self.head.temperature(),
                    )
            else:
                unified = unified_all.index_select(0, index)
                if phase == "graph":
                    mapping = self.slots.continuous_mapping(graph.adjacency, name)
                else:
                    mapping = self.slots.mapping(name, emb.device)
                logits = self.head.to_dataset(unified, mapping)
            part, count = pixel_cross_entropy_sum(logits, target)
            total = total + part
            per_dataset[name] = (part / count.clamp(min=1)).detach()
        total = total / normalisers["pixels"]
        if phase == "graph" and self.settings.orthogonality_weight > 0:
            act = self.slots.active_tensor(emb.device)
            orth = graph_loss(
                graph.unified[act], self.settings.graph_loss, self.settings.orthogonality_tau
            )
            total = total + self.settings.orthogonality_weight * orth
            logs["orthogonality"] = float(orth.detach())
        logs["phase_graph"] = float(phase == "graph")
        logs["phase_final"] = float(phase == "final")
        logs["unified_active"] = float(sum(self.slots.active))
        logs["temperature"] = float(1.0 / scale.detach())
        return LossResult(total=total, per_dataset=per_dataset, logs=logs)


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
        temperature=context.temperature,
        settings=section,
        encode_names=None
        if context.text_encoder is None
        else lambda names: context.build_text_encoder("autounify").encode(list(names)),
    )
