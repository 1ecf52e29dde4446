"""Label texts: how a label space becomes the strings a text encoder reads.

Which text stands for a class is a setting (``mode``), not code:

=============  ==========================================================================
mode           text of class ``bus``
=============  ==========================================================================
name           ``bus``
template       ``a photo of a bus.`` (any template with one ``{}``)
description    ``bus: An image of bus. A bus is a road vehicle ...`` (SentenceLabels.txt,
               section 3; falls back to the name when the class has no description)
dataset        ``An image of bus from the dataset street_a`` (AutoUniSeg.txt, section 3.1)
=============  ==========================================================================
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING

from babelseg.labels.space import ClassDef, LabelSpace

if TYPE_CHECKING:
    import torch

    from babelseg.labels.encoders.base import TextEncoder

TEXT_MODES = ("name", "template", "description", "dataset")
"""Valid values of ``mode``."""

DEFAULT_TEMPLATE = "a photo of a {}."
"""Template of the ``template`` mode; ``{}`` is replaced by the class name."""

DATASET_TEMPLATE = "An image of {name} from the dataset {dataset}"
"""Text of the ``dataset`` mode (AutoUniSeg.txt, section 3.1)."""


def check_mode(mode: str) -> str:
    """Return ``mode`` when it is one of ``TEXT_MODES``; ValueError listing them otherwise."""
    if mode not in TEXT_MODES:
        raise ValueError(f"Unknown text mode '{mode}'; valid: {', '.join(TEXT_MODES)}.")
    return mode


def _check_template(template: str) -> None:
    """ValueError unless ``template`` has exactly one replacement field, the empty ``{}``."""
    hint = f"Text template {template!r} must contain exactly one '{{}}' for the class name " + (
        f"(e.g. {DEFAULT_TEMPLATE!r})."
    )
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise ValueError(f"{hint} It does not parse: {e}") from e
    if fields != [""]:
        raise ValueError(hint)


def class_text(
    cls: ClassDef,
    *,
    mode: str = "name",
    template: str = DEFAULT_TEMPLATE,
    dataset: str = "",
) -> str:
    """The text of one class in the given mode (see the module docstring).

    Args:
        cls: The class.
        mode: One of ``TEXT_MODES``.
        template: Template with one ``{}`` (``template`` mode only).
        dataset: Dataset name (``dataset`` mode only).
    Returns:
        The text for the encoder.
    """
    check_mode(mode)
    if mode == "name":
        return cls.name
    if mode == "template":
        _check_template(template)
        return template.format(cls.name)
    if mode == "description":
        desc = (cls.description or "").strip()
        return f"{cls.name}: {desc}" if desc else cls.name
    return DATASET_TEMPLATE.format(name=cls.name, dataset=dataset)


def label_texts(
    space: LabelSpace,
    *,
    mode: str = "name",
    template: str = DEFAULT_TEMPLATE,
    dataset: str | None = None,
) -> list[str]:
    """The encoder texts of every class of a label space, in index order.

    Args:
        space: The label space (K classes).
        mode: One of ``TEXT_MODES``.
        template: Template with one ``{}`` for the class name (``template`` mode).
        dataset: Dataset name for the ``dataset`` mode; ``None`` uses ``space.name``.
    Returns:
        K strings.
    Raises:
        ValueError: unknown mode, a template without one ``{}``, or ``dataset`` mode with no
            dataset name (neither ``dataset`` nor ``space.name``).
    """
    check_mode(mode)
    if mode == "template":
        _check_template(template)
    ds = space.name if dataset is None else dataset
    if mode == "dataset" and not (ds or "").strip():
        raise ValueError(
            "Text mode 'dataset' needs a dataset name: pass dataset=... or give the label space "
            "a name."
        )
    return [class_text(c, mode=mode, template=template, dataset=ds) for c in space.classes]


def encode_label_space(
    space: LabelSpace,
    encoder: TextEncoder,
    *,
    mode: str = "name",
    template: str = DEFAULT_TEMPLATE,
    dataset: str | None = None,
) -> torch.Tensor:
    """Embed every class of a label space (the one place label texts meet an encoder).

    Wrap the encoder in ``babelseg.labels.cache.CachedTextEncoder`` to reuse embeddings
    across runs.

    Args:
        space: The label space (K classes).
        encoder: Any ``TextEncoder`` (D dimensions).
        mode, template, dataset: As in :func:`label_texts`.
    Returns:
        ``float32[K, D]`` unit-norm rows, row k for class k.
    """
    texts = label_texts(space, mode=mode, template=template, dataset=dataset)
    emb = encoder.encode(texts)
    assert tuple(emb.shape) == (len(space), encoder.dim), (tuple(emb.shape), encoder.dim)
    return emb
