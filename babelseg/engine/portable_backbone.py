"""Runs that carry what they need: the backbone's config travels in the checkpoint.

A run trained from a local pretrained backbone folder (``model.backbone: hf`` or ``clip`` with
``backbone_kwargs.name_or_path``) or a backbone weights file (``model.weights``) needs neither
once trained: the checkpoint's ``model.safetensors`` holds every trained weight. The trainer stores
:func:`portable_model_config` in the checkpoint state; :func:`config_for_loading` rebuilds the
model from it with the backbone's transformers config and no pretrained files, so ``predict`` and
``eval`` work after the folder moves and without network.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from torch import nn

STATE_KEY = "portable_model"


def portable_model_config(model_cfg: Mapping[str, Any], recipe: nn.Module) -> dict[str, Any]:
    """The ``model`` config section with pretrained-file references replaced by what they held.

    Args:
        model_cfg: The run config's ``model`` section (``Config.to_dict()["model"]``).
        recipe: The trained recipe module (its transformers backbone, if any, gives the config).
    Returns:
        A copy of ``model_cfg`` where ``weights`` is None and, for ``backbone: hf`` or ``clip``
        loaded from pretrained weights (``name_or_path``, or ``clip``'s default hub model),
        ``backbone_kwargs`` has ``config`` (the backbone's transformers config as a mapping with
        ``model_type``) instead of ``name_or_path``.
    """
    out = copy.deepcopy(dict(model_cfg))
    out["weights"] = None
    kwargs = dict(out.get("backbone_kwargs") or {})
    if out.get("backbone") in ("hf", "clip") and kwargs.get("config") is None:
        config = _transformers_backbone_config(recipe, out["backbone"])
        if config is not None:
            kwargs.pop("name_or_path", None)
            kwargs.pop("local_files_only", None)
            kwargs["config"] = config
    out["backbone_kwargs"] = kwargs
    return out


def _transformers_backbone_config(recipe: nn.Module, backbone: str) -> dict[str, Any] | None:
    """The transformers config (a plain mapping) of the recipe's ``hf`` or ``clip`` backbone."""
    if backbone == "clip":  # transformers: only here
        from babelseg.models.backbones.clip_vit import ClipVisionBackbone, portable_clip_config

        clips = [m for m in recipe.modules() if isinstance(m, ClipVisionBackbone)]
        return portable_clip_config(clips[0].config) if clips else None
    from babelseg.models.backbones.hf_auto import HFAutoBackbone

    backbones = [m for m in recipe.modules() if isinstance(m, HFAutoBackbone)]
    if not backbones:
        return None
    config = backbones[0].model.config.to_dict()
    for key in ("out_features", "stage_names", "_name_or_path", "transformers_version"):
        config.pop(key, None)
    return config


def config_for_loading(state: Mapping[str, Any]) -> dict[str, Any]:
    """The run config of a checkpoint state, its model section made portable when stored."""
    cfg = copy.deepcopy(dict(state["config"]))
    if STATE_KEY in state:
        cfg["model"] = copy.deepcopy(dict(state[STATE_KEY]))
    return cfg
