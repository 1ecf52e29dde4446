"""babelseg: one segmentation model for many datasets whose label taxonomies disagree.

Labels become language: every class is a text, a text encoder turns it into a vector, and the
model predicts in that space, so any vocabulary can be asked for at inference time.

Python API::

    import babelseg
    model = babelseg.load("runs/default")
    result = model.predict("street.jpg", labels=["road", "car", "person", "sky"])
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from babelseg.inference.api import SegmentationModel

__version__ = "0.1.0"
__all__ = ["load", "__version__"]


def load(run_or_checkpoint: str | Path, *, device: str = "cpu") -> SegmentationModel:
    """Load a trained run directory or checkpoint folder for prediction.

    See :func:`babelseg.inference.api.load`; imported here on first call, so ``import babelseg``
    stays cheap.
    """
    from babelseg.inference.api import load as _load

    return _load(run_or_checkpoint, device=device)
