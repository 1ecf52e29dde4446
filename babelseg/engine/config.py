"""Run configuration: typed dataclasses, loaded from YAML with ``key=value`` overrides.

Unknown keys are errors that name the nearest valid key. The resolved config is saved in the run
directory and inside every checkpoint, so a checkpoint alone can rebuild its model.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from babelseg.data.image_limits import DEFAULT_MAX_IMAGE_PIXELS
from babelseg.labels.text_files import read_text_file
from babelseg.models.config import ModelConfig
from babelseg.recipes.catalog import RecipeConfig


@dataclass
class DataConfig:
    """Which datasets, how they are sampled and batched.

    Attributes:
        datasets_yaml: The ``datasets.yaml`` declaring every dataset.
        train: Datasets to train on; empty = every non-held-out dataset the recipe can use.
        eval: Datasets to evaluate; empty = every dataset (held-out ones scored zero-shot).
        train_split / eval_split: Split names.
        batch_size: Images per step per process.
        crop: Training crop ``[h, w]`` for datasets whose augmentation gives none.
        sampling: ``mixed`` (datasets mixed in a batch) or ``per_dataset`` (one per batch).
        ratios: ``proportional``, ``uniform`` or ``{dataset: weight}``.
        num_workers: DataLoader worker processes.
        dataset_augmentation: Each dataset's own ``augmentation:`` from datasets.yaml
            (dataset-aware, LMSeg); False alone gives every dataset the default pipeline (the
            crop only). LMSeg's "without DAA" is False plus ``shared_augmentation``.
        shared_augmentation: With ``dataset_augmentation: false``, one pipeline for all: a
            mapping, or ``union`` of the datasets' own (LMSeg's baseline without DAA, used by
            the evidence rows).
        max_image_pixels: Largest image (width x height) read; a larger one (or a
            decompression bomb) is an error naming the file.
    """

    datasets_yaml: str = "sw/datasets.yaml"
    train: list[str] = field(default_factory=list)
    eval: list[str] = field(default_factory=list)
    train_split: str = "train"
    eval_split: str = "val"
    batch_size: int = 8
    crop: list[int] = field(default_factory=lambda: [128, 128])
    sampling: str = "mixed"
    ratios: Any = "uniform"
    num_workers: int = 1
    dataset_augmentation: bool = True
    shared_augmentation: Any = None
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS

    def __post_init__(self) -> None:
        for key, low in (("batch_size", 1), ("num_workers", 0), ("max_image_pixels", 1)):
            if getattr(self, key) < low:
                raise ValueError(f"data.{key} must be >= {low}, got {getattr(self, key)}.")


@dataclass
class LabelsConfig:
    """How label texts are made and encoded.

    Attributes:
        encoder: Text encoder name (``minilm``, ``clip``, ``hash``).
        clip_model: CLIP weights (hub name or local folder) when ``encoder=clip``.
        text_mode: One of ``babelseg.labels.texts.TEXT_MODES`` (``name``, ``template``,
            ``description``, ``dataset``, ``dataset_description``).
        template: Prompt template for ``text_mode=template``.
        cache_dir: Embedding cache folder (default ``$BABELSEG_CACHE`` or ~/.cache/babelseg).
    """

    encoder: str = "minilm"
    clip_model: str | None = None
    text_mode: str = "description"
    template: str = "a photo of a {}."
    cache_dir: str | None = None


COMPILE_BACKENDS = ("inductor", "aot_eager", "eager")
"""``train.compile_backend`` values (``torch.compile`` backends that run on CPU and GPU)."""


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping.

    Attributes:
        steps: Total optimisation steps.
        lr: Peak learning rate (AdamW).
        weight_decay: AdamW weight decay (not applied to norms, biases, temperature).
        warmup_steps: Linear warm-up steps of the poly schedule.
        poly_power: Power of the poly decay.
        backbone_lr_mult: Learning-rate multiplier of the backbone.
        grad_clip: Max global gradient norm (0 = off).
        amp: Mixed precision (bf16 autocast) where the device supports it.
        seed: Global seed.
        device: ``cpu`` or ``cuda``.
        checkpoint_every: Steps between checkpoints (the last step is always saved).
        log_every: Steps between metric log lines.
        keep_last: Checkpoints kept.
        eval_at_end: Evaluate on ``data.eval`` when training finishes.
        threads: torch intra-op threads (0 = torch default).
        init_from: A run directory or checkpoint whose network weights (backbone and pixel
            decoder, where names and shapes match) start this run; the optimizer starts fresh.
        freeze_backbone: Keep the backbone's weights fixed (frozen-backbone fine-tuning).
        freeze_encoder: Keep the whole image encoder fixed, backbone and pixel decoder (MS3.txt
            Table 3's frozen protocol): only the heads train.
        compile: Run the network's forward through ``torch.compile`` (the loss, whose matching
            crosses to the host, stays eager); the first steps pay the compilation (minutes
            for inductor on a CPU).
        compile_backend: ``torch.compile`` backend: ``inductor`` (generated kernels) or
            ``aot_eager`` (graph capture and AOT autograd without code generation).
    """

    steps: int = 2000
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    poly_power: float = 0.9
    backbone_lr_mult: float = 1.0
    grad_clip: float = 1.0
    amp: bool = False
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 500
    log_every: int = 20
    keep_last: int = 2
    eval_at_end: bool = True
    threads: int = 0
    init_from: str | None = None
    freeze_backbone: bool = False
    freeze_encoder: bool = False
    compile: bool = False
    compile_backend: str = "inductor"

    def __post_init__(self) -> None:
        """Refuse counts that would only fail later (a division by zero at the first log line,
        or the first save), when the config loads."""
        if self.compile_backend not in COMPILE_BACKENDS:
            raise ValueError(
                f"train.compile_backend={self.compile_backend!r} is not one of "
                f"{list(COMPILE_BACKENDS)}; e.g. train.compile_backend=inductor."
            )
        for key in ("steps", "checkpoint_every", "log_every", "keep_last"):
            value = getattr(self, key)
            if value < 1:
                raise ValueError(
                    f"train.{key} must be >= 1, got {value}; e.g. train.{key}="
                    f"{default_value(TrainConfig, key)}."
                )


@dataclass
class Config:
    """A whole run. ``run_dir`` holds everything the run writes."""

    run_dir: str = "runs/default"
    data: DataConfig = field(default_factory=DataConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def _check_keys(data: Mapping[str, Any], cls: type, prefix: str, source: str) -> None:
    """Raise ValueError for keys that ``cls`` does not have, naming the nearest valid key."""
    types = _field_types(cls)
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in types:
            close = difflib.get_close_matches(str(key), list(types), n=1)
            hint = f" Did you mean '{prefix}{close[0]}'?" if close else ""
            raise ValueError(
                f"Unknown config key '{path}'{f' in {source}' if source else ''}.{hint} "
                f"Valid keys here: {', '.join(types)}."
            )
        sub = types[key]
        if is_dataclass(sub):
            if not isinstance(value, Mapping):
                raise ValueError(f"Config key '{path}' must be a mapping, got {value!r}.")
            _check_keys(value, sub, f"{path}.", source)


def _parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``["train.steps=10", "data.train=[a,b]"]`` -> nested dict (values parsed as YAML)."""
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"Override '{item}' must look like key=value (e.g. train.steps=100).")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else None
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"Override '{item}': '{part}' is not a section.")
        node[parts[-1]] = value
    return nested


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Defaults <- YAML file <- ``key=value`` overrides, validated and typed.

    Args:
        path: A YAML run config, or None for the defaults.
        overrides: Dotted ``key=value`` strings (values parsed as YAML).
    Returns:
        The resolved :class:`Config`.
    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unknown keys (with the nearest valid one) or values of the wrong type.
    """
    base = OmegaConf.structured(Config)
    layers = []
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"Config file not found: {p}. See configs/ for examples.")
        try:
            data = yaml.safe_load(read_text_file(p, what="config")) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"{p} is not valid YAML: {e}") from e
        if not isinstance(data, Mapping):
            raise ValueError(f"{p}: a config must be a mapping of sections.")
        _check_keys(data, Config, "", str(p))
        layers.append(OmegaConf.create(dict(data)))
    if overrides:
        over = _parse_overrides(overrides)
        _check_keys(over, Config, "", "the command line")
        layers.append(OmegaConf.create(over))
    try:
        merged = OmegaConf.merge(base, *layers)
    except Exception as e:  # omegaconf's ValidationError: wrong value type
        raise ValueError(f"Invalid config value: {e}") from e
    cfg = OmegaConf.to_object(merged)
    assert isinstance(cfg, Config)
    return cfg


def config_from_dict(data: Mapping[str, Any]) -> Config:
    """Rebuild a Config saved with :meth:`Config.to_dict` (e.g. from a checkpoint)."""
    _check_keys(data, Config, "", "a saved config")
    merged = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.create(dict(data)))
    cfg = OmegaConf.to_object(merged)
    assert isinstance(cfg, Config)
    return cfg


def default_value(cls: type, name: str) -> Any:
    """The default of field ``name`` of dataclass ``cls`` (for help texts)."""
    for f in fields(cls):
        if f.name == name:
            if f.default is not MISSING:
                return f.default
            if f.default_factory is not MISSING:  # type: ignore[misc]
                return f.default_factory()  # type: ignore[misc]
    raise KeyError(name)
