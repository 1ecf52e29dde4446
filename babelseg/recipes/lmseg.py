"""The ``lmseg`` recipe (LMSeg.txt): mask proposals whose query embeddings are aligned with the
text embeddings of each dataset's class names.

- Text-query alignment (section 3.3, eq. 1-2): class logits are the cosine similarity of the
  query class embeddings (the query decoder's linear class head is the adapter to the text
  dimension D) with the label texts and a learnable "no object" embedding, divided by the
  temperature (0.07); matched cross-entropy with no-object weight 0.1.
- Learnable prompt context (section 3.2, CoOp): ``prompt_length`` vectors shared by all datasets
  in front of every class text inside the frozen text encoder
  (:class:`~babelseg.labels.prompt.PromptLearner`; ``configs/lmseg.yaml``: 8, on class names,
  as in the paper); 0 uses the frozen texts as given. Each step encodes the distinct texts of
  the batch's datasets once, the context as a prefix shared by all classes. Cost, measured with
  ``python benchmarks/prompt_speed.py --repeats 15 --threads T`` (the trainer's step with and
  without prompts, interleaved on the same batches, medians; on a shared, loaded 2-core
  machine, so noisy): 1.32x (T=1: 314 vs 238 ms) and 1.38x (T=2: 227 vs 165 ms), against about
  3.5x before. The trainer stores :meth:`LMSegRecipe.step_texts` of every label space with each
  checkpoint, so inference on known label spaces needs no text-encoder pass.
- Category-guided decoding (section 3.4): the query decoder's text cross-attention (after the
  visual one by default) reads the texts of the image's own label space.
- Dataset-aware augmentation (section 3.5) lives in the data layer (``augmentation:`` per
  dataset in datasets.yaml). The paper's baseline without it is ONE shared pipeline for every
  dataset: ``data.dataset_augmentation=false data.shared_augmentation=union`` (the union of the
  datasets' own) or a mapping declared once; ``dataset_augmentation=false`` alone leaves only
  the crop, which is not that baseline.
- Losses (section 3.6, eq. 3-5): Hungarian matching and the set losses of
  :class:`~babelseg.recipes.mask_common.MaskRecipe` on the final and every auxiliary layer, by
  default the paper's: class (contrastive) 1, focal 20, dice 1, the same weights in the matching
  cost, "no object" 0.1 (``recipe.mask``; focal alpha/gamma 0.25 / 2, which the paper does not
  give). Against Mask2Former's loss (sigmoid CE, 2 / 5 / 5): the evidence row "the paper's loss
  ... beats Mask2Former's" (``benchmarks/evidence_harness/papers/lmseg.py``). Our deviation that
  stays unmeasured: the mask losses are computed on uncertainty-sampled points (Mask2Former), not
  on full masks.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import torch

from babelseg.data.sample import Annotation
from babelseg.labels.prompt import PromptLearner, prompt_learner_for
from babelseg.recipes.base import RecipeContext
from babelseg.recipes.mask_common import MaskRecipe
from babelseg.recipes.mask_config import MaskRecipeConfig, mask_recipe_arguments
from babelseg.recipes.onehot_mask import ONE_HOT_MODES, OneHotClassEmbeddings


@dataclass
class LMSegConfig:
    """``lmseg`` settings (LMSeg.txt).

    Attributes:
        prompt_length: Learnable context vectors prepended to the class tokens (CoOp).
        category_guided: Text cross-attention in each decoder layer.
        decoding_order: ``visual-text`` or ``text-visual``.
        classifier: ``text`` (LMSeg), or one-hot ``union`` / ``multihead`` rows (Tables 2-3).
    """

    prompt_length: int = 8
    category_guided: bool = True
    decoding_order: str = "visual-text"
    classifier: str = "text"


class LMSegRecipe(MaskRecipe):
    """LMSeg: text-query alignment, learnable prompts, category-guided decoding.

    Args:
        prompt: The prompt learner (None: frozen texts, no prompt learning).
        label_texts: ``{dataset: [K_d strings]}`` the strings behind each dataset's texts.
        train_datasets: Datasets being trained (their prompted texts are recomputed every
            training step; the others only in eval mode, e.g. for the checkpoint).
        one_hot: Learnable one-hot class rows used instead of the texts (LMSeg Tables 2-3's
            union / multi-head baselines on the same architecture); None: texts.
        **kwargs: :class:`~babelseg.recipes.mask_common.MaskRecipe` arguments.
    """

    name = "lmseg"
    supported_annotations = frozenset({Annotation.CLEAN, Annotation.NOISY})
    forward_takes_texts = True

    def __init__(
        self,
        *,
        prompt: PromptLearner | None = None,
        label_texts: Mapping[str, Sequence[str]] | None = None,
        train_datasets: Sequence[str] = (),
        one_hot: OneHotClassEmbeddings | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if one_hot is not None and prompt is not None:
            raise ValueError("One-hot classes use no texts: set recipe.lmseg.prompt_length=0.")
        self.prompt = prompt
        self.one_hot = one_hot
        self.label_texts = {k: list(v) for k, v in (label_texts or {}).items()}
        self.train_datasets = list(train_datasets)

    def step_texts(
        self, texts: Mapping[str, torch.Tensor], *, datasets: Collection[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """The label embeddings of this step: prompted (differentiable in the context) for the
        training datasets of this batch (``datasets``; all training datasets when None) while
        training, for every dataset with known strings in eval mode; the frozen ones otherwise
        (the loss reads only the batch's); the one-hot rows instead when there are some. A text
        shared by several label spaces is encoded once."""
        if self.one_hot is not None:
            return self.one_hot(texts)
        if self.prompt is None:
            return dict(texts)
        if self.training:
            wanted = set(self.train_datasets)
            if datasets is not None:
                wanted &= set(datasets)
        else:
            wanted = set(texts)
        names = [
            n
            for n, t in texts.items()
            if n in wanted and len(self.label_texts.get(n, ())) == len(t)
        ]
        out = dict(texts)
        if names:  # one encoder pass over every wanted label space
            strings = [s for n in names for s in self.label_texts[n]]
            prompted = self.prompt(strings).split([len(self.label_texts[n]) for n in names])
            for n, t in zip(names, prompted):
                out[n] = t.to(texts[n].dtype)
        return out

    def vocabulary_embeddings(self, strings: list[str], base: torch.Tensor) -> torch.Tensor:
        """``float[K, D]`` embeddings of a new vocabulary: prompted when prompts are learned,
        the nearest training labels' one-hot rows with one-hot classes."""
        if self.one_hot is not None:
            return self.one_hot.rows_for(base).to(base.dtype)
        if self.prompt is None:
            return base
        return self.prompt(strings).to(device=base.device, dtype=base.dtype)


def build_lmseg_recipe(
    section: LMSegConfig, *, mask: MaskRecipeConfig, context: RecipeContext
) -> LMSegRecipe:
    """The ``lmseg`` recipe (LMSeg.txt); the prompt learner reads the run's text encoder."""
    if section.prompt_length < 0:
        raise ValueError(f"recipe.lmseg.prompt_length must be >= 0, got {section.prompt_length}.")
    prompt = None
    if section.prompt_length > 0:
        encoder = context.build_text_encoder("recipe.lmseg.prompt_length > 0")
        prompt = prompt_learner_for(encoder, section.prompt_length)
    kwargs = mask_recipe_arguments(
        mask,
        context=context,
        text_attention=section.category_guided,
        projection_weight=0.0,
        decoding_order=section.decoding_order,
    )
    return LMSegRecipe(
        prompt=prompt,
        label_texts=context.label_texts,
        train_datasets=context.train_datasets,
        one_hot=_one_hot_classes(section.classifier, context),
        **kwargs,
    )


def _one_hot_classes(classifier: str, context: RecipeContext) -> OneHotClassEmbeddings | None:
    """``recipe.lmseg.classifier``: None for ``text``, else the one-hot rows."""
    if classifier == "text":
        return None
    if classifier not in ONE_HOT_MODES:
        raise ValueError(
            f"recipe.lmseg.classifier must be one of {['text', *ONE_HOT_MODES]}, got "
            f"'{classifier}'."
        )
    train = context.train_datasets
    return OneHotClassEmbeddings(
        mode=classifier,
        class_names={d: context.label_spaces[d].names for d in train},
        label_texts={d: context.texts[d] for d in train},
        embed_dim=context.embed_dim,
    )
