"""The ``recipe.ms3`` section: what MS3.txt fixes, and the settings it leaves to us.

From the paper: M = 13 context tokens (section 4.1, after DenseCLIP), alpha = 1 (eq. 3), two
3-layer projection heads of 512 channels (section 4.1), tau = 0.07 (``recipe.temperature``).
The paper gives no value for the momentum, the memory-bank size, the pixels enqueued per step,
the length of the language-improvement stage, or any schedule of the multi-label extension:
every such default below is **our choice**, not the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MS3Config:
    """``ms3`` settings (MS3.txt).

    Attributes:
        context_length: Learnable context tokens M of the language-embedding improvement M_I
            (paper: 13; 0 = no M_I, T is the frozen encoder's).
        language_stage_steps: Length of the M_I stage (our choice): the first steps of the run,
            in which only the prompt context (and a stage-only probe) learns, against the
            network's frozen features; the network trains from then on.
        prompt_steps: Former name of ``language_stage_steps`` (used when set). Before issue 14
            the network also trained during this stage; now it is frozen then.
        alpha: Weight of the visual loss L_v (paper: 1).
        visual_start: First step (counted from the run's start, M_I included) at which L_v
            counts; before it only L_l trains the network while the momentum network and the
            bank follow it (a diagnostic of ours; 0 = from the first network step, the paper).
        momentum: Momentum of the momentum image encoder (our choice; the paper gives none).
            0.99 beat 0.999 (MoCo's), 0.9 and 0 for visual alone: evidence rows "momentum
            0.999 / 0.9 / no momentum beats 0.99 (visual alone, own-dataset softmax)" of
            ``benchmarks/results/evidence/ms3.md``, -6.0, -8.1 and -11.8 mIoU, 3 seeds, 300
            steps; L + V did not distinguish them.
        bank_size: Pixel embeddings kept per class in each memory bank (our choice).
        bank_pixels: Pixels per class and image put in the banks each step (our choice).
        head_width: Hidden channels of the two projection heads (paper: 512).
        head_layers: Layers of each projection head (paper: 3).
        visual_dim: Width of the visual embeddings (paper: 512); the language head's width is
            the text dimension D.
        language: Use the language loss L_l (eq. 1).
        visual: Use the visual loss L_v (eq. 2, 4).
        multi_label: Cross-modal multi-label extension (eq. 5-9). Off by default, our
            deviation: it is not shown to help. With the recognised-class gate the evidence row
            "multi-label extension helps (language)" of
            ``benchmarks/results/evidence/ms3_multi_label.md`` (3 seeds, 300 steps) measured
            -0.8 mIoU [-2.7, +1.0]; as printed (no gate) it collapsed training (-16.0 with
            language, -15.1 with language + visual, ``ms3.md``). ``configs/ms3.yaml`` agrees.
            Needs ``language=true`` (eq. 5 reads the pixels against the language table T).
        multi_label_start: First step at which extra positives count (our choice; stable class
            means: a class also needs a full language bank).
        multi_label_ramp: Steps over which their weight rises from 0 to 1 (our choice).
        multi_label_max_extra: Extra positives kept per class, the most similar (our choice;
            None = no cap, eq. 6 as written).
        multi_label_recognised_only: Extra positives only for classes whose pixels are nearest
            their own text among their dataset's classes (our addition; False = eq. 6 as
            written). Chosen by the evidence row "extra positives only for recognised classes
            (ours) beat eq. 6 for every class" of ``benchmarks/results/evidence/
            ms3_multi_label.md``: +15.4 mIoU [+13.1, +17.7] (3 seeds, 300 steps).
        pairing: The classes each pixel's softmax runs over in eq. 1-2: ``"union"`` (the paper:
            every class of every training dataset) or ``"dataset"`` (only its own dataset's
            classes, as the CE baselines do; a diagnostic of ours, not the paper's method:
            +6.6 mIoU [+3.9, +9.3] for language alone, evidence row "pairing pixels with their
            own dataset's classes only (diagnostic, ours) beats eq. 1's union softmax (language
            alone)" of ``benchmarks/results/evidence/ms3.md``, 3 seeds; the union stays).
    """

    context_length: int = 13
    language_stage_steps: int = 300
    prompt_steps: int | None = None
    alpha: float = 1.0
    visual_start: int = 0
    momentum: float = 0.99
    bank_size: int = 64
    bank_pixels: int = 8
    head_width: int = 512
    head_layers: int = 3
    visual_dim: int = 512
    language: bool = True
    visual: bool = True
    multi_label: bool = False
    multi_label_start: int = 600
    multi_label_ramp: int = 300
    multi_label_max_extra: int | None = 2
    multi_label_recognised_only: bool = True
    pairing: str = "union"

    def __post_init__(self) -> None:
        if self.prompt_steps is not None:
            self.language_stage_steps = self.prompt_steps
        counts = {
            "context_length": self.context_length,
            "language_stage_steps": self.language_stage_steps,
            "visual_start": self.visual_start,
            "multi_label_start": self.multi_label_start,
            "multi_label_ramp": self.multi_label_ramp,
            "multi_label_max_extra": 0
            if self.multi_label_max_extra is None
            else self.multi_label_max_extra,
        }
        if self.pairing not in ("union", "dataset"):
            raise ValueError(
                f"recipe.ms3.pairing must be 'union' or 'dataset', got {self.pairing!r}."
            )
        bad = {k: v for k, v in counts.items() if v < 0}
        if bad:
            raise ValueError(f"recipe.ms3: these settings must be >= 0, got {bad}.")

    def visual_weight(self, step: int) -> float:
        """The weight of L_v at ``step``: ``alpha`` from ``visual_start`` on, 0 before."""
        return self.alpha if step >= self.visual_start else 0.0
