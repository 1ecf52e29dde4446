"""The label space a dataset declaration names: a YAML file, an inline mapping or a built-in card
(:mod:`babelseg.data.cards`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from babelseg.data.cards import build_card
from babelseg.data.declaration import DatasetDecl
from babelseg.labels.space import LabelSpace


def resolve_label_space(decl: DatasetDecl) -> LabelSpace:
    """The label space a declaration names.

    ``labels`` may be a path to a label-space YAML, an inline ``{classes: [...]}`` mapping, or a
    built-in card ``{card: NAME, ...}`` (see ``babelseg.data.cards``).
    """
    spec = decl.labels_spec
    if isinstance(spec, Path):
        return LabelSpace.from_yaml(spec, name=decl.name)
    if isinstance(spec, Mapping) and "card" in spec:
        return build_card(dict(spec), decl)
    if isinstance(spec, Mapping):
        return LabelSpace.from_dict(spec, name=decl.name, source=decl.source)
    raise ValueError(
        f"{decl.source} (dataset '{decl.name}'): 'labels' must be a YAML path, an inline "
        "{classes: [...]} mapping or {card: NAME}."
    )
