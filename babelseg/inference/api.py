"""The Python API: ``babelseg.load(run)`` and ``model.predict(images, labels=[...])``.

Example::

    import babelseg
    from PIL import Image

    model = babelseg.load("runs/default")
    result = model.predict(Image.open("street.jpg"), labels=["road", "car", "person", "sky"])
    result.save("street_overlay.png")
    for segment in result.segments:          # mask bool[H, W], label, score
        print(segment.label, segment.score, segment.area)

Large images: ``model.predict(path, dataset="metro_drive", mode="slide", window=512,
stride=384)``; flip and multi-scale test-time augmentation with ``flip=True, scales=(0.75, 1,
1.25)`` (see :mod:`babelseg.inference.windows`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from babelseg.inference.full_resolution import full_resolution
from babelseg.inference.images import InputImage, as_images
from babelseg.inference.predictor import Predictor, TaskPredictions
from babelseg.inference.result import SegmentationResult
from babelseg.inference.windows import InferenceOptions, LogitsFn, batch_scores, network_input
from babelseg.labels.space import LabelSpace
from babelseg.recipes.base import forward_kwargs


@dataclasses.dataclass
class Vocabulary:
    """A vocabulary resolved for prediction.

    Attributes:
        space: Its classes (names, on-disk values, colours, which are things).
        text: ``float[K, D]`` text embeddings.
        dataset: The training dataset it belongs to (recipes with per-dataset classifiers use
            it), ``"unified"`` for an autounify run's unified space, else None.
    """

    space: LabelSpace
    text: torch.Tensor
    dataset: str | None


def _with_things(space: LabelSpace, things: Sequence[str]) -> LabelSpace:
    unknown = [t for t in things if t not in space.names]
    if unknown:
        raise ValueError(f"things names {unknown}, which are not labels; labels: {space.names}.")
    classes = [dataclasses.replace(c, is_thing=c.is_thing or c.name in things) for c in space]
    return LabelSpace(classes, name=space.name, ignore_values=space.ignore_values)


class SegmentationModel:
    """A trained babelseg model that answers in any vocabulary.

    Build it with :func:`load`. ``predictor`` gives the lower-level
    :class:`~babelseg.inference.predictor.Predictor` (one image, text embeddings in).

    Args:
        predictor: The loaded checkpoint.
    """

    def __init__(self, *, predictor: Predictor) -> None:
        self.predictor = predictor

    @property
    def datasets(self) -> list[str]:
        """Names of the label spaces stored in the checkpoint (usable as ``dataset=``)."""
        return sorted(self.predictor.label_spaces)

    @property
    def recipe_name(self) -> str:
        """The recipe the model was trained with (``sentence``, ``lmseg``, ...)."""
        return str(self.predictor.cfg.recipe.name)

    @property
    def predicts_segments(self) -> bool:
        """Whether results carry panoptic segments and instances (mask recipes)."""
        return self.predictor.predicts_segments

    def vocabulary(
        self,
        *,
        labels: str | Sequence[str] | LabelSpace | None = None,
        dataset: str | None = None,
        space: str | None = None,
        things: Sequence[str] = (),
    ) -> Vocabulary:
        """Resolve exactly one of ``labels`` / ``dataset`` / ``space`` (see :meth:`predict`)."""
        given = [n for n, v in (("labels", labels), ("dataset", dataset), ("space", space)) if v]
        if len(given) != 1:
            raise ValueError(
                "Give exactly one vocabulary: labels=['road', 'car', ...] (any names, or 'name: "
                f"description'), dataset=NAME (one of {self.datasets}) or space='unified' "
                f"(autounify runs); got {given or 'none'}."
            )
        if dataset is not None:
            lab_space, text = self.predictor.dataset_vocabulary(dataset)
            vocab = Vocabulary(lab_space, text, self.predictor.known_dataset(dataset))
        elif space is not None:
            if space != "unified":
                raise ValueError(f"space must be 'unified', got {space!r}.")
            lab_space, text = self.predictor.unified_vocabulary()
            vocab = Vocabulary(lab_space, text, "unified")
        else:
            lab_space = _label_space(labels)
            vocab = Vocabulary(lab_space, self.predictor.vocabulary(lab_space), None)
        if things:
            vocab.space = _with_things(vocab.space, list(things))
        return vocab

    def scores_fn(self, text: torch.Tensor, *, dataset: str | None) -> LogitsFn:
        """The network's class scores ``float[B, K, h/4, w/4]`` of normalised images
        ``float[B, 3, h, w]`` against ``text float[K, D]`` (what
        :mod:`~babelseg.inference.windows` runs); ``dataset`` as in :class:`Vocabulary`."""
        text = text.to(self.predictor.device)

        def scores(x: torch.Tensor) -> torch.Tensor:
            out = self._forward(x, text, dataset)
            return self.predictor.recipe.semantic_logits(out, text, dataset=dataset)

        return scores

    def _forward(self, x: torch.Tensor, text: torch.Tensor, dataset: str | None):
        recipe, n = self.predictor.recipe, x.shape[0]
        return recipe(x, **forward_kwargs(recipe, texts=[text] * n, datasets=[dataset] * n))

    @torch.inference_mode()
    def predict(
        self,
        images: Any,
        *,
        labels: str | Sequence[str] | LabelSpace | None = None,
        dataset: str | None = None,
        space: str | None = None,
        things: Sequence[str] = (),
        mode: str = "whole",
        window: int = 512,
        stride: int = 384,
        size: int = 512,
        max_size: int = 1024,
        flip: bool = False,
        scales: Sequence[float] = (1.0,),
        batch_size: int = 4,
    ) -> SegmentationResult | list[SegmentationResult]:
        """Segment images in a vocabulary.

        Args:
            images: A path, a ``PIL.Image``, a numpy ``uint8[H, W, 3]`` array, a torch tensor
                ``[3, H, W]`` (uint8, or float 0..1), or a list of these (predicted in batches
                of images of one size).
            labels: Any class names: a list (``"name"`` or ``"name: description"``), one
                comma-separated string, or a :class:`LabelSpace`.
            dataset: A label space stored in the checkpoint (see :attr:`datasets`).
            space: ``"unified"``: the learned unified classes of an autounify run.
            things: Class names to treat as things (instances) in panoptic results.
            mode: ``whole`` (one pass), ``slide`` (windows; for large images) or ``resize``.
            window: Slide window side (pixels, multiple of 4).
            stride: Slide step (pixels, multiple of 4, at most ``window``).
            size: Resize mode: shorter side after resizing.
            max_size: Resize mode: cap on the longer side.
            flip: Average with the horizontally mirrored prediction.
            scales: Average over these resize factors.
            batch_size: Images (whole/resize) or windows (slide) per forward pass.
        Returns:
            One :class:`SegmentationResult` for one image, a list for a list (or a 4-D batch).
            Panoptic segments and instances are filled for mask-classification recipes
            (lmseg, dataseg) in one-pass mode (``mode="whole"``, no flip or scales).
        Raises:
            TypeError: an input that is not an image.
            ValueError: a malformed image, no or several vocabularies, or bad options.
        """
        options = InferenceOptions(
            mode=mode,
            window=window,
            stride=stride,
            size=size,
            max_size=max_size,
            flip=flip,
            scales=tuple(scales),
            batch_size=batch_size,
        )
        inputs, is_batch = as_images(images)
        vocab = self.vocabulary(labels=labels, dataset=dataset, space=space, things=things)
        results: list[SegmentationResult | None] = [None] * len(inputs)
        for group in _same_size_groups(inputs, options.batch_size):
            batch = [inputs[i] for i in group]
            for i, result in zip(group, self._predict_group(batch, vocab, options)):
                results[i] = result
        done = [r for r in results if r is not None]
        return done if is_batch else done[0]

    def _predict_group(
        self, batch: list[InputImage], vocab: Vocabulary, options: InferenceOptions
    ) -> list[SegmentationResult]:
        """Images of one size: scores (and segments in one-pass mode), then the results."""
        height, width = batch[0].pixels.shape[:2]
        panoptic: list[Any] = [None] * len(batch)
        instances: list[Any] = [None] * len(batch)
        device = self.predictor.device
        if options.single_pass:
            text = vocab.text.to(device)
            x = torch.stack([network_input(im.pixels) for im in batch]).to(device)
            out = self._forward(x, text, vocab.dataset)
            recipe = self.predictor.recipe
            scores = recipe.semantic_logits(out, text, dataset=vocab.dataset).float().cpu()
            if self.predicts_segments:
                sizes = [(height, width)] * len(batch)
                things = torch.as_tensor(vocab.space.thing_mask, device=device)
                panoptic = recipe.panoptic(
                    out, text, is_thing=things, dataset=vocab.dataset, sizes=sizes
                )
                instances = recipe.instances(out, text, dataset=vocab.dataset, sizes=sizes)
        else:
            fn = self.scores_fn(vocab.text, dataset=vocab.dataset)
            scores = batch_scores([im.pixels for im in batch], fn, options=options, device=device)
        normalisation = "sum" if self.predicts_segments else "softmax"
        results = []
        for b, image in enumerate(batch):
            full = full_resolution(scores[b], (height, width), normalisation=normalisation)
            results.append(
                SegmentationResult(
                    label_map=full.labels,
                    vocabulary=vocab.space,
                    scores=scores[b],
                    image=image.pixels,
                    normalisation=normalisation,
                    class_area=full.area,
                    class_score=full.mean_probability,
                    panoptic=panoptic[b],
                    instances=instances[b],
                    name=image.name,
                )
            )
        return results


def _label_space(labels: str | Sequence[str] | LabelSpace | None) -> LabelSpace:
    if isinstance(labels, LabelSpace):
        return labels
    if isinstance(labels, str):
        names = [n.strip() for n in labels.split(",")]
    elif isinstance(labels, Sequence) and all(isinstance(n, str) for n in labels):
        names = [n.strip() for n in labels]
    else:
        raise TypeError(
            "labels must be a list of class names, one comma-separated string or a LabelSpace, "
            f"got {type(labels).__name__}."
        )
    names = [n for n in names if n]
    if not names:
        raise ValueError("labels is empty; give e.g. labels=['road', 'car', 'person'].")
    return LabelSpace.from_names(names, name="custom")


def _same_size_groups(inputs: list[InputImage], batch_size: int) -> list[list[int]]:
    """Indices of ``inputs`` grouped by image size, at most ``batch_size`` per group."""
    by_size: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(inputs):
        by_size.setdefault(image.pixels.shape, []).append(i)
    return [
        idx[start : start + batch_size]
        for idx in by_size.values()
        for start in range(0, len(idx), batch_size)
    ]


def load(run_or_checkpoint: str | Path, *, device: str = "cpu") -> SegmentationModel:
    """Load a trained model for prediction.

    Args:
        run_or_checkpoint: A run directory (its latest checkpoint) or a checkpoint folder.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
    Returns:
        A :class:`SegmentationModel`; call its ``predict``.
    Raises:
        FileNotFoundError: no checkpoint there.
    """
    return SegmentationModel(predictor=Predictor.from_checkpoint(run_or_checkpoint, device=device))


@torch.inference_mode()
def semantic_labels(
    predictor: Predictor,
    image: np.ndarray,
    text: torch.Tensor,
    *,
    dataset: str | None,
    options: InferenceOptions,
) -> np.ndarray:
    """``int64[H, W]`` class indices of one image in any mode (what ``babelseg predict`` and
    ``babelseg eval`` call when given ``--mode``/``--flip``/``--scales``)."""
    fn = SegmentationModel(predictor=predictor).scores_fn(text, dataset=dataset)
    scores = batch_scores([image], fn, options=options, device=predictor.device)
    normalisation = "sum" if predictor.predicts_segments else "softmax"
    return full_resolution(scores[0], image.shape[:2], normalisation=normalisation).labels


def predict_tasks(
    predictor: Predictor,
    image: np.ndarray,
    text: torch.Tensor,
    *,
    tasks: Sequence[str] = ("semantic",),
    is_thing: np.ndarray | Sequence[bool] | None = None,
    dataset: str | None = None,
    options: InferenceOptions,
) -> TaskPredictions:
    """:meth:`Predictor.predict_tasks` in any inference mode (``babelseg predict`` / ``eval``).

    One-pass options use the predictor as it is; the others (slide, resize, flip, scales) give
    the semantic labels only.

    Raises:
        ValueError: panoptic or instances asked with options that are not one pass.
    """
    if options.single_pass:
        return predictor.predict_tasks(image, text, tasks=tasks, is_thing=is_thing, dataset=dataset)
    if set(tasks) - {"semantic"}:
        raise ValueError(
            f"Panoptic and instance predictions come from one pass of the whole image; mode "
            f"'{options.mode}' (or flip / scales) gives semantic labels only."
        )
    return TaskPredictions(
        semantic=semantic_labels(predictor, image, text, dataset=dataset, options=options)
    )
