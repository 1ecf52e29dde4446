"""The reader interface: random access to the Samples of one split of one dataset."""

from __future__ import annotations

from abc import ABC, abstractmethod

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
