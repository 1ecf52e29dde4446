"""The trained model as the server sees it: vocabularies in, results out.

A thin adapter over the Python API (``babelseg.load`` -> ``SegmentationModel``): it turns the
API's errors into refusals with an HTTP status, serialises vocabulary look-ups (requests run in
threads), picks the sliding-window mode for large images so memory follows the window, and
points the text-embedding cache at the server's own temporary folder.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np

import babelseg
from babelseg.inference.api import SegmentationModel
from babelseg.inference.result import SegmentationResult
from babelseg.labels.space import LabelSpace
from babelseg.serving.uploads import ServeLimits, UploadRejected

UNIFIED = "unified"
"""The ``dataset`` value that asks an autounify run for its learned unified label space."""


@dataclasses.dataclass(frozen=True)
class RequestVocabulary:
    """The vocabulary one request asked for, resolved once.

    Attributes:
        space: Its K classes (names, colours).
        ask: The keyword that asks ``SegmentationModel.predict`` for it again: ``labels``
            (this space, whose embeddings the resolution left in the model's cache),
            ``dataset`` or ``space``.
    """

    space: LabelSpace
    ask: dict


def parse_labels(text: str, *, max_labels: int) -> list[str]:
    """Class names from typed text: one per line when it has several lines, else comma-separated.

    Lines allow ``"name: description"`` with commas in the description.

    Raises:
        UploadRejected: 400 for no label, or more than ``max_labels``.
    """
    parts = text.splitlines() if "\n" in text.strip() else text.split(",")
    names = [p.strip() for p in parts if p.strip()]
    if not names:
        raise UploadRejected(
            400,
            'The vocabulary is empty; type labels such as "road, car, person" or pick a dataset.',
        )
    if len(names) > max_labels:
        raise UploadRejected(
            400,
            f"The vocabulary has {len(names)} labels; this server takes up to {max_labels} "
            "(babelseg serve --max-labels).",
        )
    return names


class ServedModel:
    """A loaded model plus a lock around its vocabulary cache.

    Args:
        model: The model from ``babelseg.load``.
        name: What to call it on the page (the run folder's name).
    """

    def __init__(self, *, model: SegmentationModel, name: str) -> None:
        self.model = model
        self.name = name
        self._vocab_lock = threading.Lock()

    @classmethod
    def from_run(cls, run: str | Path, *, device: str = "cpu", cache_dir: Path) -> ServedModel:
        """Load a run folder or checkpoint; embeddings of new vocabularies go to ``cache_dir``."""
        model = babelseg.load(run, device=device)
        cfg = model.predictor.cfg
        cfg.labels = dataclasses.replace(cfg.labels, cache_dir=str(cache_dir))
        return cls(model=model, name=Path(run).resolve().name)

    def describe(self) -> dict:
        """What the page offers: the recipe, each dataset's classes, the unified space."""
        p = self.model.predictor
        datasets = {
            name: {
                "classes": space.names,
                "heldout": bool(p.heldout.get(name, False)),
                "trained": name in p.train_datasets,
            }
            for name, space in sorted(p.label_spaces.items())
        }
        return {
            "model": self.name,
            "recipe": self.model.recipe_name,
            "text_encoder": p.cfg.labels.encoder,
            "datasets": datasets,
            "unified": p.recipe.has_unified_space,
        }

    def vocabulary(
        self, *, labels: str | None, dataset: str | None, max_labels: int
    ) -> RequestVocabulary:
        """The vocabulary a request asks for: typed ``labels`` or a ``dataset``'s (or unified).

        Typed labels are embedded here, under a lock (the text encoder and its caches are not
        made for threads); predicting with them afterwards finds them in the model's cache.

        Raises:
            UploadRejected: 400 for neither or both, an unknown dataset, or bad labels.
        """
        labels = (labels or "").strip() or None
        dataset = (dataset or "").strip() or None
        if (labels is None) == (dataset is None):
            raise UploadRejected(
                400, "Give either 'labels' (e.g. \"road, car, person\") or 'dataset', not both."
            )
        names = None if labels is None else parse_labels(labels, max_labels=max_labels)
        try:
            with self._vocab_lock:
                if dataset == UNIFIED:
                    ask: dict = {"space": UNIFIED}
                    space = self.model.vocabulary(space=UNIFIED).space
                elif dataset is not None:
                    ask = {"dataset": dataset}
                    space = self.model.vocabulary(dataset=dataset).space
                else:
                    space = self.model.vocabulary(labels=names).space
                    ask = {"labels": space}
                return RequestVocabulary(space=space, ask=ask)
        except ValueError as e:
            raise UploadRejected(400, str(e)) from e

    def predict(
        self, image: np.ndarray, vocab: RequestVocabulary, *, limits: ServeLimits
    ) -> SegmentationResult:
        """Segment one ``uint8[H, W, 3]`` image (sliding windows above
        ``limits.slide_above_pixels``, so memory follows the window, not the image).

        Raises:
            UploadRejected: 400 when the score grid ``float32[K, H/4, W/4]`` would exceed
                ``limits.max_score_bytes``, or the network cannot take the image.
        """
        height, width = image.shape[:2]
        need = 4 * len(vocab.space) * -(-height // 4) * -(-width // 4)
        if need > limits.max_score_bytes:
            raise UploadRejected(
                400,
                f"{len(vocab.space)} labels on a {width}x{height} image need {need} bytes of "
                f"scores; this server allows {limits.max_score_bytes}. Use fewer labels or a "
                "smaller image.",
            )
        mode = "slide" if height * width > limits.slide_above_pixels else "whole"
        try:
            return self.model.predict(image, **vocab.ask, mode=mode, batch_size=1)
        except ValueError as e:  # e.g. an image too small for the network's strides
            raise UploadRejected(
                400, f"The model could not segment this {width}x{height} image ({e})."
            ) from e
