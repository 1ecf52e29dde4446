"""Every recipe by name: its class and how to build it from the ``recipe:`` config section.

Adding a recipe: its file (the :class:`~babelseg.recipes.base.Recipe` subclass, its config
section dataclass and its builder), one :data:`CATALOG` line, its section in
:class:`RecipeConfig` when it has settings, and a YAML in ``configs/``; the contract test
(``tests/test_recipe_contract.py``) runs every catalog entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from babelseg.data.sample import Annotation
from babelseg.recipes.autounify import AutoUnifyRecipe, build_autounify_recipe
from babelseg.recipes.autounify_config import AutoUnifyConfig
from babelseg.recipes.base import Recipe, RecipeContext
from babelseg.recipes.dataseg import DaTaSegConfig, DaTaSegRecipe, build_dataseg_recipe
from babelseg.recipes.lmseg import LMSegConfig, LMSegRecipe, build_lmseg_recipe
from babelseg.recipes.mask_config import MaskRecipeConfig
from babelseg.recipes.ms3 import MS3Recipe
from babelseg.recipes.ms3_build import build_ms3_recipe
from babelseg.recipes.ms3_settings import MS3Config
from babelseg.recipes.multihead import MultiHeadRecipe, build_multihead_recipe
from babelseg.recipes.sentence import SentenceConfig, SentenceRecipe, build_sentence_recipe
from babelseg.recipes.union import UnionRecipe, build_union_recipe


@dataclass
class RecipeConfig:
    """The ``recipe:`` section: which recipe, the settings recipes share, and each recipe's own.

    Attributes:
        name: Recipe name (a key of :data:`CATALOG`).
        temperature: Initial softmax temperature of the cosine logits (SentenceLabels eq. 2).
        learn_temperature: Whether the temperature is learned.
        noisy_drop_fraction / box_teacher / clip_vision_model / box_pooled_size /
            box_loss_weight / box_head_start: The ``sentence`` recipe's settings
            (:class:`SentenceConfig`), kept directly under ``recipe:`` as they always were.
        mask / lmseg / dataseg / ms3 / autounify: Each recipe's own section (``mask`` is shared
            by lmseg and dataseg).
    """

    name: str = "sentence"
    temperature: float = 0.07
    learn_temperature: bool = True
    noisy_drop_fraction: float = 0.3
    box_teacher: str = "text"
    clip_vision_model: str | None = None
    box_pooled_size: int = 4
    box_loss_weight: float = 0.1
    box_head_start: str = "random"
    mask: MaskRecipeConfig = field(default_factory=MaskRecipeConfig)
    lmseg: LMSegConfig = field(default_factory=LMSegConfig)
    dataseg: DaTaSegConfig = field(default_factory=DaTaSegConfig)
    ms3: MS3Config = field(default_factory=MS3Config)
    autounify: AutoUnifyConfig = field(default_factory=AutoUnifyConfig)

    def sentence(self) -> SentenceConfig:
        """The ``sentence`` recipe's settings as its typed section."""
        return SentenceConfig(
            noisy_drop_fraction=self.noisy_drop_fraction,
            box_teacher=self.box_teacher,
            clip_vision_model=self.clip_vision_model,
            box_pooled_size=self.box_pooled_size,
            box_loss_weight=self.box_loss_weight,
            box_head_start=self.box_head_start,
        )


RecipeBuilder = Callable[[RecipeConfig, RecipeContext], Recipe]


@dataclass(frozen=True)
class CatalogEntry:
    """A recipe class and the call that builds it from its own section(s)."""

    recipe: type[Recipe]
    build: RecipeBuilder


CATALOG: dict[str, CatalogEntry] = {
    "sentence": CatalogEntry(
        SentenceRecipe, lambda r, ctx: build_sentence_recipe(r.sentence(), context=ctx)
    ),
    "autounify": CatalogEntry(
        AutoUnifyRecipe, lambda r, ctx: build_autounify_recipe(r.autounify, context=ctx)
    ),
    "lmseg": CatalogEntry(
        LMSegRecipe, lambda r, ctx: build_lmseg_recipe(r.lmseg, mask=r.mask, context=ctx)
    ),
    "dataseg": CatalogEntry(
        DaTaSegRecipe, lambda r, ctx: build_dataseg_recipe(r.dataseg, mask=r.mask, context=ctx)
    ),
    "ms3": CatalogEntry(MS3Recipe, lambda r, ctx: build_ms3_recipe(r.ms3, context=ctx)),
    "union": CatalogEntry(UnionRecipe, lambda r, ctx: build_union_recipe(context=ctx)),
    "multihead": CatalogEntry(MultiHeadRecipe, lambda r, ctx: build_multihead_recipe(context=ctx)),
}
"""Recipe name -> class and builder (one plain dict)."""


def catalog_entry(name: str) -> CatalogEntry:
    """The entry of recipe ``name``; ValueError naming the valid recipes otherwise."""
    if name not in CATALOG:
        raise ValueError(f"Unknown recipe '{name}'; valid recipes: {', '.join(CATALOG)}.")
    return CATALOG[name]


def supported_annotations(name: str) -> set[Annotation]:
    """The annotation kinds recipe ``name`` trains on (read from its class)."""
    return set(catalog_entry(name).recipe.supported_annotations)


def build_recipe_from_section(config: RecipeConfig, context: RecipeContext) -> Recipe:
    """The recipe ``config.name`` built from its section(s) and ``context``."""
    return catalog_entry(config.name).build(config, context)
