"""The ``ms3`` recipe built from its ``recipe.ms3`` section and the run's context."""

from __future__ import annotations

from babelseg.labels.prompt import prompt_learner_for
from babelseg.models.heads.projection import ProjectionHead
from babelseg.models.two_head import TwoHeadPixelModel
from babelseg.recipes.base import RecipeContext, pixel_network
from babelseg.recipes.label_matching import union_label_space
from babelseg.recipes.ms3 import MS3Recipe
from babelseg.recipes.ms3_settings import MS3Config


def build_ms3_recipe(section: MS3Config, *, context: RecipeContext) -> MS3Recipe:
    """The ``ms3`` recipe (MS3.txt) over the union label space of the training datasets: the
    configured backbone and pixel decoder with the two projection heads of section 4.1."""
    texts, classes, frozen = union_label_space(
        "ms3", context.label_texts, context.texts, context.train_datasets
    )
    body = pixel_network(context)

    def head(width: int) -> ProjectionHead:
        return ProjectionHead(
            in_dim=body.decoder.dim,
            hidden_dim=section.head_width,
            embed_dim=width,
            layers=section.head_layers,
        )

    network = TwoHeadPixelModel(
        backbone=body.backbone,
        decoder=body.decoder,
        language_head=head(context.embed_dim),
        visual_head=head(section.visual_dim),
    )
    prompt = None
    if section.language and section.context_length > 0:
        encoder = context.build_text_encoder("recipe.ms3.context_length > 0")
        prompt = prompt_learner_for(encoder, section.context_length)
    return MS3Recipe(
        network=network,
        union_texts=texts,
        dataset_classes=classes,
        language_embeddings=frozen,
        settings=section,
        prompt=prompt,
        label_texts=context.label_texts,
        temperature=context.temperature,
    )
