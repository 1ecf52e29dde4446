"""Dataset readers, one per on-disk format, and ``make_reader`` to build one from a declaration.

``FORMAT_READERS`` is the plain dict of readers (no registration by import side effects).
"""

from __future__ import annotations

from babelseg.data.declaration import DatasetDecl
from babelseg.data.label_source import resolve_label_space
from babelseg.data.readers.base import DatasetReader
from babelseg.data.readers.coco_instances import CocoInstancesReader
from babelseg.data.readers.coco_panoptic import CocoPanopticReader
from babelseg.data.readers.semantic_png import SemanticPngReader
from babelseg.labels.space import LabelSpace

FORMAT_READERS: dict[str, type[DatasetReader]] = {
    "semantic-png": SemanticPngReader,
    "coco-panoptic": CocoPanopticReader,
    "coco-instances": CocoInstancesReader,
}

__all__ = [
    "FORMAT_READERS",
    "CocoInstancesReader",
    "CocoPanopticReader",
    "DatasetReader",
    "SemanticPngReader",
    "make_reader",
]


def make_reader(
    decl: DatasetDecl,
    split: str,
    label_space: LabelSpace | None = None,
    *,
    with_hidden_masks: bool = False,
) -> DatasetReader:
    """The reader of one split of a declared dataset.

    Args:
        decl: The dataset declaration.
        split: Split name (a key of ``decl.splits``).
        label_space: The dataset's label space; resolved from the declaration when None.
        with_hidden_masks: ``coco-instances`` with ``annotation: boxes`` only: also decode the
            masks the JSON has, for scoring weak supervision. Other formats ignore it.
    Returns:
        The reader (files indexed, nothing decoded yet).
    Raises:
        ValueError: unknown format or split; problems the reader finds while indexing.
        FileNotFoundError: missing folders or files.
    """
    if decl.format not in FORMAT_READERS:
        raise ValueError(
            f"{decl.source} (dataset '{decl.name}'): no reader for format '{decl.format}'; "
            f"valid formats: {sorted(FORMAT_READERS)}."
        )
    decl.split(split)  # ValueError naming the available splits
    space = label_space if label_space is not None else resolve_label_space(decl)
    cls = FORMAT_READERS[decl.format]
    if cls is CocoInstancesReader:
        return CocoInstancesReader(decl, split, space, with_hidden_masks=with_hidden_masks)
    return cls(decl, split, space)  # type: ignore[call-arg]
