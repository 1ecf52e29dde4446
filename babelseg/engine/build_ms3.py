"""Config -> the ``ms3`` recipe: the union label space of the training datasets, the frozen text
embeddings of its classes, the prompt learner and the network."""

from __future__ import annotations

import torch

from babelseg.engine.config import Config
from babelseg.labels.encoders.factory import build_text_encoder
from babelseg.labels.prompt import PromptLearner, prompt_learner_for
from babelseg.models.builders import build_pixel_model
from babelseg.recipes.base import RecipeContext
from babelseg.recipes.ms3 import MS3Recipe


def union_label_space(
    context: RecipeContext,
) -> tuple[list[str], dict[str, list[int]], torch.Tensor]:
    """The union of the training datasets' label texts (identical texts are one class).

    Returns:
        ``(texts [K], {dataset: [union index per class]}, float[K, D] frozen embeddings)``.
    """
    if not context.train_datasets:
        raise ValueError(
            "Recipe 'ms3' pairs pixels with the union label space of its training datasets: "
            "build it with a RecipeContext that names train_datasets (the trainer and "
            "Predictor.from_checkpoint do)."
        )
    texts: list[str] = []
    rows: list[torch.Tensor] = []
    where: dict[str, int] = {}
    classes: dict[str, list[int]] = {}
    for name in context.train_datasets:
        if name not in context.label_texts or name not in context.texts:
            raise ValueError(f"Recipe 'ms3': no label texts or embeddings for dataset '{name}'.")
        strings, emb = context.label_texts[name], context.texts[name]
        if len(strings) != emb.shape[0]:
            raise ValueError(
                f"Recipe 'ms3': dataset '{name}' has {len(strings)} label texts but "
                f"{emb.shape[0]} embeddings."
            )
        for text, row in zip(strings, emb, strict=True):
            if text not in where:
                where[text] = len(texts)
                texts.append(text)
                rows.append(row.float())
        classes[name] = [where[t] for t in strings]
    return texts, classes, torch.stack(rows)


def build_prompt_learner(cfg: Config) -> PromptLearner:
    """A prompt learner over the configured text encoder (``minilm`` or ``clip``)."""
    kwargs: dict = {}
    if cfg.labels.encoder == "clip":
        if not cfg.labels.clip_model:
            raise ValueError("labels.encoder=clip needs labels.clip_model=PATH_OR_NAME.")
        kwargs["name_or_path"] = cfg.labels.clip_model
    encoder = build_text_encoder(cfg.labels.encoder, **kwargs)
    return prompt_learner_for(encoder, cfg.recipe.ms3.context_length)


def build_ms3_recipe(cfg: Config, context: RecipeContext) -> MS3Recipe:
    """The ``ms3`` recipe (MS3.txt)."""
    ms3 = cfg.recipe.ms3
    if ms3.context_length < 0 or ms3.prompt_steps < 0:
        raise ValueError(
            f"recipe.ms3.context_length and prompt_steps must be >= 0, got {ms3.context_length} "
            f"and {ms3.prompt_steps}."
        )
    texts, classes, frozen = union_label_space(context)
    model = build_pixel_model(
        backbone=cfg.model.backbone,
        backbone_kwargs=dict(cfg.model.backbone_kwargs),
        decoder_dim=cfg.model.decoder_dim,
        embed_dim=context.embed_dim,
        weights=cfg.model.weights,
    )
    prompt = None
    if ms3.language and ms3.context_length > 0:
        prompt = build_prompt_learner(cfg)
    return MS3Recipe(
        model=model,
        union_texts=texts,
        dataset_classes=classes,
        language_embeddings=frozen,
        prompt=prompt,
        label_texts=context.label_texts,
        prompt_steps=ms3.prompt_steps,
        temperature=cfg.recipe.temperature,
        alpha=ms3.alpha,
        momentum=ms3.momentum,
        bank_size=ms3.bank_size,
        bank_pixels=ms3.bank_pixels,
        language=ms3.language,
        visual=ms3.visual,
        multi_label=ms3.multi_label,
    )
