"""The ``recipe.autounify`` section: the settings of the ``autounify`` recipe (AutoUniSeg.txt)."""

from __future__ import annotations

from dataclasses import dataclass

from babelseg.unify.head import DATASET_LOGITS, GRAPH_LOSSES
from babelseg.unify.node_count import MERGE_RULES


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
        final_steps: Steps of the final segmentation-only stage, the run's last: the boolean
            mappings are computed and pruned once when it starts, the graph is frozen, and the
            segmentation network trains under exactly the mappings and unified embeddings that
            evaluation and prediction use afterwards (as the authors' released code ends). 0:
            no final stage (the mappings are fixed after the last graph phase).
        dataset_logits: Eq. 5's form: ``logsumexp`` (a label's probability is the sum of its
            unified classes' probabilities) or ``paper_sum`` (``s = M u``, the printed form).
            The default ``logsumexp`` is our deviation, kept by the evidence row "eq. 5 as
            printed (sum of logits) learns a better taxonomy than the config's form" in
            ``benchmarks/results/evidence/autounify.md`` (3 seeds: pair F1 -0.24 [-0.28, -0.20]
            for the printed form, which leaves most cross-dataset pairs unlinked; mIoU -1.5
            [-3.1, +0.2], inconclusive).
        graph_loss: Eq. 7's form: ``cosine_ce`` (cross-entropy of cosine similarities at
            ``orthogonality_tau``) or ``paper_entropy`` (``-sum_i p_ii log p_ii`` of dot
            products, the printed form, the default). Our ``cosine_ce`` was not shown better
            (``benchmarks/results/evidence/autounify.md``, 3 seeds: mIoU -0.6 [-1.9, +0.7],
            pair F1 +0.00 [-0.01, +0.01] for the printed form), so the paper's form is used.
        adjacency_scale: Multiplier of the learnable adjacency logits: how fast the graph phases
            move the edges (the initial edges do not depend on it).
        min_share: Cross-dataset validation: containment both ways for two labels to merge.
        min_match: Cross-dataset validation: containment a class needs to map to a label of a
            dataset it has no member in.
        min_presence: Cross-dataset validation: how often (relative to its own dataset) a
            class must be detected in another dataset's images to map to one of its labels.
        text_weight: Cross-dataset validation: bonus of near-identical label names in merges
            (the cosine of the names alone, encoded by the run's text encoder, whatever
            ``labels.text_mode``; our device, not the paper's).
        text_floor: Name cosine similarity below which there is no bonus.
        merge_rule: Cross-dataset validation: which labels of two datasets merge (the paper's
            Appendix B, which gives its algorithm, is not in our copy, so both rules are our
            choices). ``"mutual"``: each is the other's best match. ``"stable"`` (the default):
            a stable matching by deferred acceptance, which keeps every mutual pair and also
            pairs a label whose best match is a catch-all held by a better partner (home
            "table" whose best pascal match is "background") with its next choice. Chosen by
            the evidence row "stable merges" of ``benchmarks/results/taxonomy.md``: over two
            worlds x six seeds, paired with mutual, -0.42 classes [-0.74, -0.09] (every run
            within 33 +- 1, mutual 7 of 12) and pair F1 +0.002 [+0.000, +0.005].
        drop_redundant: When the final mappings are pruned, also drop unified classes none
            of whose labels is theirs alone (every label they map to is mapped by another
            class: ``babelseg/unify/mappings.py`` ``redundant_slots``). Our addition; off by
            default, as the paper drops only inactive nodes. Not shown to help with an interval:
            over two worlds x three seeds (``benchmarks/results/taxonomy.md``) the paired
            difference is -0.5 unified classes (95 % interval [-1.07, +0.07]) and pair F1
            -0.000 ([-0.006, +0.006]).
        orthogonality_tau: Temperature of the ``cosine_ce`` orthogonality loss.
        zero_shot_tau: Temperature of the zero-shot route (other vocabularies).
    """

    num_unified: int = 0
    graph_layers: int = 2
    orthogonality_weight: float = 0.1
    alternate_every: int = 100
    remap_every: int = 200
    warmup_steps: int = 600
    final_steps: int = 200
    dataset_logits: str = "logsumexp"
    graph_loss: str = "paper_entropy"
    adjacency_scale: float = 40.0
    min_share: float = 0.3
    min_match: float = 0.3
    min_presence: float = 0.15
    text_weight: float = 0.5
    text_floor: float = 0.6
    merge_rule: str = "stable"
    drop_redundant: bool = False
    orthogonality_tau: float = 0.1
    zero_shot_tau: float = 0.05

    def __post_init__(self) -> None:
        if self.dataset_logits not in DATASET_LOGITS:
            raise ValueError(
                f"recipe.autounify.dataset_logits must be one of {', '.join(DATASET_LOGITS)}, "
                f"got '{self.dataset_logits}'."
            )
        if self.graph_loss not in GRAPH_LOSSES:
            raise ValueError(
                f"recipe.autounify.graph_loss must be one of {', '.join(GRAPH_LOSSES)}, got "
                f"'{self.graph_loss}'."
            )
        if self.merge_rule not in MERGE_RULES:
            raise ValueError(
                f"recipe.autounify.merge_rule must be one of {', '.join(MERGE_RULES)}, got "
                f"'{self.merge_rule}'."
            )
        if self.alternate_every < 1 or self.remap_every < 1:
            raise ValueError(
                f"recipe.autounify.alternate_every ({self.alternate_every}) and remap_every "
                f"({self.remap_every}) must be >= 1."
            )
        if self.final_steps < 0:
            raise ValueError(
                f"recipe.autounify.final_steps must be >= 0 (0: no final stage), got "
                f"{self.final_steps}."
            )
