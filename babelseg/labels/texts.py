"""Label texts: how a label space becomes the strings a text encoder reads.

Which text stands for a class is a setting (``mode``), not code:

===================  ====================================================================
mode                 text of class ``bus``
===================  ====================================================================
name                 ``bus``
template             ``a photo of a bus.`` (any template with one ``{}``)
description          ``bus: An image of bus. A bus is a road vehicle ...``
                     (SentenceLabels.txt, section 3 and Fig. 2)
dataset              ``An image of bus from the dataset street_a`` (AutoUniSeg.txt, 3.1)
dataset_description  ``An image of bus from the dataset street_a. A bus is a road ...``
                     (AutoUniSeg.txt, 3.1: the dataset sentence completed with a description)
===================  ====================================================================

A class without a description keeps the sentence and drops only the description:
``bus: An image of bus.`` and ``An image of bus from the dataset street_a.``. The paper's
sentence is "<label>: An image of <label>." followed by a Wikipedia description; the first part
is a template every label gets, the description the part that may be missing. Keeping the
template for every class puts described and undescribed classes in one text style, so the
cosine between two labels does not depend on which of them happens to have a description (with
bare names for some classes and sentences for others it would).
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING

from babelseg.labels.space import ClassDef, LabelSpace

if TYPE_CHECKING:
    import torch

    from babelseg.labels.encoders.base import TextEncoder

TEXT_MODES = ("name", "template", "description", "dataset", "dataset_description")
"""Valid values of ``mode``."""

DEFAULT_TEMPLATE = "a photo of a {}."
"""Template of the ``template`` mode; ``{}`` is replaced by the class name."""

DATASET_TEMPLATE = "An image of {name} from the dataset {dataset}"
"""Text of the ``dataset`` mode (AutoUniSeg.txt, section 3.1)."""

SENTENCE_TEMPLATE = "{name}: An image of {name}."
"""Start of the ``description`` mode's text (SentenceLabels.txt, section 3); the class's
description follows after a space."""

DATASET_MODES = ("dataset", "dataset_description")
"""Text modes whose text names the dataset (they need a dataset name)."""


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
        dataset: Dataset name (``dataset`` and ``dataset_description`` modes only).
    Returns:
        The text for the encoder.
    """
    check_mode(mode)
    if mode == "name":
        return cls.name
    if mode == "template":
        _check_template(template)
        return template.format(cls.name)
    if mode == "dataset":
        return DATASET_TEMPLATE.format(name=cls.name, dataset=dataset)
    if mode == "description":
        sentence = SENTENCE_TEMPLATE.format(name=cls.name)
    else:
        sentence = DATASET_TEMPLATE.format(name=cls.name, dataset=dataset) + "."
    return _with_description(sentence, cls.description)


def _with_description(sentence: str, description: str | None) -> str:
    """``sentence`` followed by the description (stripped), or alone when there is none."""
    desc = (description or "").strip()
    return f"{sentence} {desc}" if desc else sentence


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
        dataset: Dataset name for the ``dataset`` and ``dataset_description`` modes; ``None``
            uses ``space.name``.
    Returns:
        K strings.
    Raises:
        ValueError: unknown mode, a template without one ``{}``, or a dataset mode with no
            dataset name (neither ``dataset`` nor ``space.name``).
    """
    check_mode(mode)
    if mode == "template":
        _check_template(template)
    ds = space.name if dataset is None else dataset
    if mode in DATASET_MODES and not (ds or "").strip():
        raise ValueError(
            f"Text mode '{mode}' needs a dataset name: pass dataset=... or give the label space "
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
