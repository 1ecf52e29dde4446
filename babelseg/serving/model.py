"""The trained model as the server sees it: vocabularies in, class scores out.

A thin adapter over :class:`babelseg.inference.predictor.Predictor`; the server never touches
the recipe directly. Text embeddings of typed vocabularies are cached in the server's own
temporary folder, never in the user's embedding cache.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from babelseg.inference.predictor import Predictor, labels_at_full_resolution
from babelseg.labels.space import LabelSpace
from babelseg.serving.uploads import ServeLimits, UploadRejected

UNIFIED = "unified"
"""The ``dataset`` value that asks an autounify run for its learned unified label space."""


@dataclass(frozen=True)
class Vocabulary:
    """A label space ready to predict with.

    Attributes:
        space: The K classes (names, colours).
        text: ``float[K, D]`` text embeddings.
        dataset: Passed to the recipe (a training dataset, ``"unified"``, or None).
    """

    space: LabelSpace
    text: torch.Tensor
    dataset: str | None


@dataclass(frozen=True)
class Scores:
    """One image's prediction.

    Attributes:
        labels: ``int64[H, W]`` class indices at the image's resolution.
        scores: ``float32[h, w, K]`` class scores at the model's output resolution (pixel-major),
            on the CPU; bilinear upsampling of them gives ``labels`` by arg-max.
    """

    labels: np.ndarray
    scores: torch.Tensor


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
    """A predictor plus a lock around its vocabulary cache (requests run in threads).

    Args:
        predictor: The loaded model.
        name: What to call it on the page (the run folder's name).
    """

    def __init__(self, *, predictor: Predictor, name: str) -> None:
        self.predictor = predictor
        self.name = name
        self._vocab_lock = threading.Lock()

    @classmethod
    def from_run(cls, run: str | Path, *, device: str = "cpu", cache_dir: Path) -> ServedModel:
        """Load a run folder or checkpoint; embeddings of new vocabularies go to ``cache_dir``."""
        predictor = Predictor.from_checkpoint(run, device=device)
        predictor.cfg.labels = dataclasses.replace(predictor.cfg.labels, cache_dir=str(cache_dir))
        return cls(predictor=predictor, name=Path(run).resolve().name)

    def describe(self) -> dict:
        """What the page offers: the recipe, each dataset's classes, the unified space."""
        p = self.predictor
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
            "recipe": p.cfg.recipe.name,
            "text_encoder": p.cfg.labels.encoder,
            "datasets": datasets,
            "unified": hasattr(p.recipe, "unified_space"),
        }

    def vocabulary(self, *, labels: str | None, dataset: str | None, max_labels: int) -> Vocabulary:
        """The vocabulary a request asks for: typed ``labels`` or a ``dataset``'s (or unified).

        Raises:
            UploadRejected: 400 for neither or both, an unknown dataset, or bad labels.
        """
        labels = (labels or "").strip() or None
        dataset = (dataset or "").strip() or None
        if (labels is None) == (dataset is None):
            raise UploadRejected(
                400, "Give either 'labels' (e.g. \"road, car, person\") or 'dataset', not both."
            )
        p = self.predictor
        try:
            with self._vocab_lock:
                if dataset == UNIFIED:
                    space, text = p.unified_vocabulary()
                    return Vocabulary(space=space, text=text, dataset=UNIFIED)
                if dataset is not None:
                    space, text = p.dataset_vocabulary(dataset)
                    return Vocabulary(space=space, text=text, dataset=p.known_dataset(dataset))
                space = LabelSpace.from_names(
                    parse_labels(labels, max_labels=max_labels), name="custom"
                )
                return Vocabulary(space=space, text=p.vocabulary(space), dataset=None)
        except UploadRejected:
            raise
        except ValueError as e:
            raise UploadRejected(400, str(e)) from e

    def predict(self, image: np.ndarray, vocab: Vocabulary, *, limits: ServeLimits) -> Scores:
        """Class scores and labels of one ``uint8[H, W, 3]`` image.

        Raises:
            UploadRejected: 400 when the score volume would exceed ``limits.max_score_bytes``.
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
        try:
            scores = self.predictor.logits(image, vocab.text, dataset=vocab.dataset).float()
        except ValueError as e:  # e.g. an image too small for the network's strides
            raise UploadRejected(
                400, f"The model could not segment this {width}x{height} image ({e})."
            ) from e
        labels = labels_at_full_resolution(scores, (height, width))
        return Scores(labels=labels.cpu().numpy(), scores=scores.cpu())
