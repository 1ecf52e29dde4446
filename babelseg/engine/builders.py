"""Config -> objects. The only place that reads a whole Config; recipe builders take their own
section and a :class:`~babelseg.recipes.base.RecipeContext`, modules below plain arguments."""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from dataclasses import replace

import torch
from torch.utils.data import DataLoader

from babelseg.data.augment import build_augmentation, shared_augmentation
from babelseg.data.collate import collate_samples
from babelseg.data.declaration import DatasetDecl
from babelseg.data.readers import make_reader
from babelseg.data.sampler import MultiDatasetBatchSampler
from babelseg.data.targets import TargetSpec
from babelseg.data.torch_dataset import AugmentedDataset, MultiDataset
from babelseg.data.workers import WorkerInit
from babelseg.engine.config import Config, LabelsConfig
from babelseg.labels.cache import CachedTextEncoder, EmbeddingCache
from babelseg.labels.encoders.base import TextEncoder
from babelseg.labels.encoders.factory import build_text_encoder
from babelseg.labels.space import LabelSpace
from babelseg.labels.texts import encode_label_space, label_texts
from babelseg.recipes.base import Recipe, RecipeContext, check_annotations
from babelseg.recipes.catalog import build_recipe_from_section, supported_annotations


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


def build_recipe(cfg: Config, *, embed_dim: int, context: RecipeContext | None = None) -> Recipe:
    """The recipe module (model + recipe-specific parameters) for a config.

    Args:
        cfg: The run config.
        embed_dim: Text-embedding dimension D (when ``context`` is None).
        context: Label spaces, texts and training datasets; recipes with per-dataset parts need
            it (None gives an empty context, enough for ``sentence``). Its shared settings
            (network, steps, device, temperature, text encoder, sampling) are taken from
            ``cfg``.
    """
    if context is None:
        context = RecipeContext(
            label_spaces={}, texts={}, label_texts={}, train_datasets=[], embed_dim=embed_dim
        )
    context = replace(
        context,
        model=cfg.model,
        total_steps=cfg.train.steps,
        device=cfg.train.device,
        temperature=cfg.recipe.temperature,
        learn_temperature=cfg.recipe.learn_temperature,
        sampling=cfg.data.sampling,
        text_encoder=functools.partial(
            build_text_encoder_from_config, cfg.labels, device=cfg.train.device
        ),
    )
    return build_recipe_from_section(cfg.recipe, context)


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
    own = {n: decls[n].augmentation for n in names}
    specs = {n: own[n] if cfg.data.dataset_augmentation else None for n in names}
    if cfg.data.shared_augmentation is not None:
        if cfg.data.dataset_augmentation:
            raise ValueError(
                "data.shared_augmentation gives every dataset one pipeline: set "
                "data.dataset_augmentation=false with it (or remove it)."
            )
        shared = shared_augmentation(cfg.data.shared_augmentation, own)
        specs = {n: shared for n in names}
    parts = []
    for name in names:
        reader = make_reader(decls[name], cfg.data.train_split, spaces[name])
        if len(reader) == 0:
            raise ValueError(
                f"Dataset '{name}' has no images in split '{cfg.data.train_split}' "
                f"({decls[name].source}); check its paths with `babelseg datasets check`."
            )
        aug = build_augmentation(
            specs[name],
            train=True,
            crop=crop,
            name=name,  # type: ignore[arg-type]
        )
        parts.append(AugmentedDataset(reader, aug, seed=cfg.train.seed))
    return MultiDataset(parts)


def train_dataset_names(
    cfg: Config, decls: Mapping[str, DatasetDecl], *, report: bool = True
) -> list[str]:
    """The datasets to train on: ``data.train`` (checked against the recipe's annotation kinds),
    or every non-held-out dataset the recipe can use (``report``: say which were skipped)."""
    supported = supported_annotations(cfg.recipe.name)
    if cfg.data.train:
        names = list(cfg.data.train)
        check_annotations(cfg.recipe.name, supported, {n: decls[n].annotation for n in names})
        return names
    names = [n for n, d in decls.items() if not d.heldout and d.annotation in supported]
    skipped = [n for n, d in decls.items() if not d.heldout and n not in names]
    if skipped and report:
        print(
            f"recipe '{cfg.recipe.name}' trains on {names}; skipping {skipped} "
            "(annotation kind it cannot use)",
            file=sys.stderr,
        )
    if not names:
        raise ValueError(f"No dataset in {cfg.data.datasets_yaml} fits recipe '{cfg.recipe.name}'.")
    return names


def build_train_loader(
    cfg: Config,
    dataset: MultiDataset,
    names: list[str],
    *,
    rank: int,
    world_size: int,
    target_spec: TargetSpec | None = None,
    pin_memory: bool = False,
) -> tuple[MultiDatasetBatchSampler, DataLoader]:
    """The multi-dataset batch sampler of this process and the DataLoader over it; its workers
    collate the recipe's ``target_spec`` targets as tensors, into pinned memory when
    ``pin_memory`` (CUDA)."""
    ratios = cfg.data.ratios
    if isinstance(ratios, dict):
        missing = [n for n in names if n not in ratios]
        if missing:
            raise ValueError(f"data.ratios gives no weight for {missing}.")
        ratios = [float(ratios[n]) for n in names]
    sampler = MultiDatasetBatchSampler(
        dataset.sizes,
        batch_size=cfg.data.batch_size,
        ratios=ratios,
        mode=cfg.data.sampling,
        seed=cfg.train.seed,
        rank=rank,
        world_size=world_size,
    )
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=functools.partial(collate_samples, targets=target_spec),
        num_workers=cfg.data.num_workers,
        pin_memory=pin_memory,
        persistent_workers=cfg.data.num_workers > 0,
        prefetch_factor=4 if cfg.data.num_workers > 0 else None,
        worker_init_fn=WorkerInit(),  # workers die with this process, same image pixel limit
        # its own generator: starting the iterator must not draw from the global one, or a
        # resumed run's later random numbers would differ from the uninterrupted run's
        generator=torch.Generator().manual_seed(cfg.train.seed),
    )
    return sampler, loader
