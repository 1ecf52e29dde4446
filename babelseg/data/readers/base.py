"""The reader interface: random access to the Samples of one split of one dataset."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from babelseg.data.declaration import DatasetDecl
from babelseg.data.sample import Sample
from babelseg.labels.space import LabelSpace


class DatasetReader(ABC):
    """Reads one split of one declared dataset.

    Args:
        decl: The dataset declaration.
        split: Split name (a key of ``decl.splits``).
        label_space: The dataset's label space (see ``resolve_label_space``).

    Readers index their files in ``__init__`` (cheap: no image decoding) and decode lazily in
    ``__getitem__``, so they can be used by ``torch.utils.data.DataLoader`` workers. Every problem
    with the files raises ``FileNotFoundError``/``ValueError`` naming the file and the fix.
    """

    def __init__(self, decl: DatasetDecl, split: str, label_space: LabelSpace) -> None:
        self.decl = decl
        self.split = split
        self.label_space = label_space

    @property
    def name(self) -> str:
        return self.decl.name

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: int) -> Sample: ...

    @abstractmethod
    def image_ids(self) -> list[str]:
        """Stable ids (file stems) of the split's images, in index order."""

    def _sample(
        self, *, image: np.ndarray, image_id: str, path: str | Path, **targets: Any
    ) -> Sample:
        """A Sample of this dataset: name, task and annotation kind filled in."""
        return Sample(
            image=image,
            dataset=self.name,
            task=self.decl.task,
            annotation=self.decl.annotation,
            image_id=image_id,
            path=str(path),
            **targets,
        )

    def _check_same_size(
        self,
        image: np.ndarray,
        image_path: str | Path,
        target: np.ndarray,
        target_path: str | Path,
        *,
        what: str,
        fix: str,
    ) -> None:
        """ValueError naming both files when a target map and its image differ in size."""
        if target.shape[:2] != image.shape[:2]:
            raise ValueError(
                f"Dataset '{self.name}': image {image_path} is {image.shape[1]}x{image.shape[0]} "
                f"but its {what} {target_path} is {target.shape[1]}x{target.shape[0]} (WxH); "
                f"{fix}"
            )
