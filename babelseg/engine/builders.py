"""Config -> objects. The only place that reads a Config; modules below take plain arguments."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from babelseg.data.augment import build_augmentation
from babelseg.data.declaration import DatasetDecl
from babelseg.data.readers import make_reader
from babelseg.data.sample import Annotation
from babelseg.data.torch_dataset import AugmentedDataset, MultiDataset
from babelseg.engine.build_autounify import build_autounify_recipe
from babelseg.engine.build_baselines import build_multihead_recipe, build_union_recipe
from babelseg.engine.build_mask_recipes import (
    DaTaSegRecipe,
    LMSegRecipe,
    build_dataseg_recipe,
    build_lmseg_recipe,
)
from babelseg.engine.build_ms3 import build_ms3_recipe
from babelseg.engine.config import Config, LabelsConfig
from babelseg.labels.cache import CachedTextEncoder, EmbeddingCache
from babelseg.labels.encoders.base import TextEncoder
from babelseg.labels.encoders.clip_vision import ClipVisionTeacher
from babelseg.labels.encoders.factory import build_text_encoder
from babelseg.labels.space import LabelSpace
from babelseg.labels.texts import encode_label_space, label_texts
from babelseg.losses.box_distillation import BoxDistillationHead
from babelseg.models.builders import build_pixel_model
from babelseg.recipes.base import RecipeContext
from babelseg.recipes.sentence import SentenceRecipe


def build_text_encoder_from_config(cfg: LabelsConfig, *, device: str = "cpu") -> TextEncoder:
    """The configured text encoder behind the on-disk embedding cache."""
    kwargs: dict = {}
    if cfg.encoder == "clip":
        if not cfg.clip_model:
            raise ValueError("labels.encoder=clip needs labels.clip_model=PATH_OR_NAME.")
        kwargs["name_or_path"] = cfg.clip_model
    if cfg.encoder in ("minilm", "clip"):
        kwargs["device"] = device
    encoder = build_text_encoder(cfg.encoder, **kwargs)
    return CachedTextEncoder(encoder, EmbeddingCache(cfg.cache_dir))


def embed_label_space(
    space: LabelSpace, encoder: TextEncoder, cfg: LabelsConfig, *, dataset: str | None = None
) -> torch.Tensor:
    """``float[K, D]`` text embeddings of a label space under the configured text mode."""
    return encode_label_space(
        space, encoder, mode=cfg.text_mode, template=cfg.template, dataset=dataset or space.name
    )


def build_sentence_recipe(cfg: Config, context: RecipeContext) -> SentenceRecipe:
    """The ``sentence`` recipe (SentenceLabels.txt)."""
    embed_dim = context.embed_dim
    model = build_pixel_model(
        backbone=cfg.model.backbone,
        backbone_kwargs=dict(cfg.model.backbone_kwargs),
        decoder_dim=cfg.model.decoder_dim,
        embed_dim=embed_dim,
        weights=cfg.model.weights,
    )
    teacher, head = None, None
    if cfg.recipe.box_teacher == "clip":
        if not cfg.recipe.clip_vision_model:
            raise ValueError("recipe.box_teacher=clip needs recipe.clip_vision_model=PATH_OR_NAME.")
        teacher = ClipVisionTeacher(cfg.recipe.clip_vision_model, device=cfg.train.device)
        head = BoxDistillationHead(embed_dim, teacher.dim)
    elif cfg.recipe.box_teacher != "text":
        raise ValueError(
            f"recipe.box_teacher must be 'text' or 'clip', got '{cfg.recipe.box_teacher}'."
        )
    return SentenceRecipe(
        model=model,
        temperature=cfg.recipe.temperature,
        learn_temperature=cfg.recipe.learn_temperature,
        noisy_drop_fraction=cfg.recipe.noisy_drop_fraction,
        box_pooled_size=cfg.recipe.box_pooled_size,
        box_loss_weight=cfg.recipe.box_loss_weight,
        box_teacher=teacher,
        box_head=head,
    )


RecipeBuilder = Callable[[Config, RecipeContext], nn.Module]


@dataclass(frozen=True)
class RecipeEntry:
    """How to build a recipe and which annotation kinds it trains on."""

    build: RecipeBuilder
    annotations: frozenset[Annotation]


RECIPES: dict[str, RecipeEntry] = {
    "sentence": RecipeEntry(build_sentence_recipe, frozenset(SentenceRecipe.supported_annotations)),
    "autounify": RecipeEntry(
        build_autounify_recipe, frozenset({Annotation.CLEAN, Annotation.NOISY})
    ),
    "lmseg": RecipeEntry(build_lmseg_recipe, frozenset(LMSegRecipe.supported_annotations)),
    "dataseg": RecipeEntry(build_dataseg_recipe, frozenset(DaTaSegRecipe.supported_annotations)),
    "ms3": RecipeEntry(build_ms3_recipe, frozenset({Annotation.CLEAN, Annotation.NOISY})),
    "union": RecipeEntry(build_union_recipe, frozenset({Annotation.CLEAN, Annotation.NOISY})),
    "multihead": RecipeEntry(
        build_multihead_recipe, frozenset({Annotation.CLEAN, Annotation.NOISY})
    ),
}
"""Recipe name -> entry (one plain dict; add new recipes here)."""


def supported_annotations(name: str) -> set[Annotation]:
    """The annotation kinds recipe ``name`` trains on."""
    if name not in RECIPES:
        raise ValueError(f"Unknown recipe '{name}'; valid recipes: {', '.join(RECIPES)}.")
    return set(RECIPES[name].annotations)


def build_recipe(cfg: Config, *, embed_dim: int, context: RecipeContext | None = None) -> nn.Module:
    """The recipe module (model + recipe-specific parameters) for a config.

    Args:
        cfg: The run config.
        embed_dim: Text-embedding dimension D.
        context: Label spaces, texts and training datasets; recipes with per-dataset parts need
            it (None gives an empty context, enough for ``sentence``).
    """
    name = cfg.recipe.name
    if name not in RECIPES:
        raise ValueError(f"Unknown recipe '{name}'; valid recipes: {', '.join(RECIPES)}.")
    if context is None:
        context = RecipeContext(
            label_spaces={}, texts={}, label_texts={}, train_datasets=[], embed_dim=embed_dim
        )
    return RECIPES[name].build(cfg, context)


def recipe_context(
    cfg: Config,
    spaces: Mapping[str, LabelSpace],
    texts: Mapping[str, torch.Tensor],
    train_datasets: list[str],
) -> RecipeContext:
    """The :class:`RecipeContext` of a run (label strings re-derived from the text mode)."""
    strings = {
        n: label_texts(s, mode=cfg.labels.text_mode, template=cfg.labels.template, dataset=n)
        for n, s in spaces.items()
    }
    embed_dim = int(next(iter(texts.values())).shape[1]) if texts else 0
    return RecipeContext(
        label_spaces=dict(spaces),
        texts=dict(texts),
        label_texts=strings,
        train_datasets=list(train_datasets),
        embed_dim=embed_dim,
    )


def build_train_dataset(
    cfg: Config,
    decls: Mapping[str, DatasetDecl],
    spaces: Mapping[str, LabelSpace],
    names: list[str],
) -> MultiDataset:
    """The augmented training datasets, in ``names`` order."""
    crop = tuple(cfg.data.crop)
    parts = []
    for name in names:
        reader = make_reader(decls[name], cfg.data.train_split, spaces[name])
        if len(reader) == 0:
            raise ValueError(
                f"Dataset '{name}' has no images in split '{cfg.data.train_split}' "
                f"({decls[name].source}); check its paths with `babelseg datasets check`."
            )
        aug = build_augmentation(
            decls[name].augmentation if cfg.data.dataset_augmentation else None,
            train=True,
            crop=crop,
            name=name,  # type: ignore[arg-type]
        )
        parts.append(AugmentedDataset(reader, aug, seed=cfg.train.seed))
    return MultiDataset(parts)
