"""How the text-free baselines (``union``, ``multihead``) meet a vocabulary.

A one-hot classifier has no text side, so it answers a vocabulary in one of two ways:

- the vocabulary *is* a training dataset's label space: that dataset's own classifier outputs;
- any other vocabulary (held-out datasets, user labels): each asked class is matched to the
  training label whose text embedding is nearest (cosine) to the asked class's text embedding,
  and gets that label's score. This is the fair zero-shot route a one-hot model has: it borrows
  the text encoder only to look a name up, never to classify pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F


def name_key(name: str) -> str:
    """The merge key of a class name: case- and whitespace-insensitive.

    ``"Traffic  Light " -> "traffic light"``.
    """
    return " ".join(name.split()).casefold()


def union_of_names(
    class_names: Mapping[str, Sequence[str]],
) -> tuple[list[str], dict[str, list[int]]]:
    """One-hot union of several label spaces, identical names (see :func:`name_key`) merged.

    Args:
        class_names: ``{dataset: [K_d class names]}``, in the order the union is built.
    Returns:
        ``(union_names, index)``: the union's class names (first spelling seen, first-seen
        order) and ``{dataset: [K_d union indices]}``.
    """
    union_names: list[str] = []
    where: dict[str, int] = {}
    index: dict[str, list[int]] = {}
    for dataset, names in class_names.items():
        ids = []
        for name in names:
            key = name_key(name)
            if key not in where:
                where[key] = len(union_names)
                union_names.append(name)
            ids.append(where[key])
        index[dataset] = ids
    return union_names, index


def nearest_labels(query: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """For each query text, the label text nearest by cosine similarity.

    Args:
        query: ``float[K, D]`` asked texts.
        labels: ``float[M, D]`` candidate label texts.
    Returns:
        ``int64[K]`` indices into ``labels`` (ties: the lowest index).
    """
    q = F.normalize(query.float(), dim=1)
    m = F.normalize(labels.float().to(q.device), dim=1)
    return (q @ m.T).argmax(dim=1)


def matching_dataset(
    text: torch.Tensor, dataset_texts: Mapping[str, torch.Tensor], *, atol: float = 1e-5
) -> str | None:
    """The training dataset whose stored label texts equal ``text`` (same K, same vectors).

    Args:
        text: ``float[K, D]`` the vocabulary asked for.
        dataset_texts: ``{dataset: float[K_d, D]}`` stored training texts.
    Returns:
        The first matching dataset name, or None.
    """
    for name, stored in dataset_texts.items():
        if stored.shape == text.shape and torch.allclose(
            stored.to(text.device, text.dtype), text, atol=atol
        ):
            return name
    return None


def split_rows(rows: torch.Tensor, sizes: Sequence[int], names: Sequence[str]) -> dict:
    """``{name: rows[offset : offset + size]}`` for consecutive blocks of ``rows``."""
    out, start = {}, 0
    for name, size in zip(names, sizes, strict=True):
        out[name] = rows[start : start + size]
        start += size
    return out


def check_training_context(
    recipe: str, label_spaces: Mapping[str, object], texts: Mapping, train_datasets: Sequence[str]
) -> None:
    """Raise ValueError unless every training dataset has a label space and texts (the
    baselines classify into the training datasets' label spaces)."""
    if not train_datasets:
        raise ValueError(
            f"Recipe '{recipe}' classifies into the training datasets' label spaces, so it needs "
            "them: build it with a RecipeContext that names train_datasets (the trainer and "
            "Predictor.from_checkpoint do)."
        )
    missing = [d for d in train_datasets if d not in label_spaces or d not in texts]
    if missing:
        raise ValueError(
            f"Recipe '{recipe}': no label space or texts for training dataset(s) {missing}; "
            f"known: {sorted(label_spaces)}."
        )


def union_label_space(
    recipe: str,
    label_texts: Mapping[str, Sequence[str]],
    texts: Mapping[str, torch.Tensor],
    train_datasets: Sequence[str],
) -> tuple[list[str], dict[str, list[int]], torch.Tensor]:
    """The union of the training datasets' label texts (identical texts are one class).

    Args:
        recipe: The recipe asking (for error messages).
        label_texts: ``{dataset: [K_d strings]}``.
        texts: ``{dataset: float[K_d, D]}`` their frozen embeddings.
        train_datasets: The datasets whose label spaces are joined, in order.
    Returns:
        ``(texts [K], {dataset: [union index per class]}, float[K, D] frozen embeddings)``.
    """
    if not train_datasets:
        raise ValueError(
            f"Recipe '{recipe}' pairs pixels with the union label space of its training datasets: "
            "build it with a RecipeContext that names train_datasets (the trainer and "
            "Predictor.from_checkpoint do)."
        )
    union: list[str] = []
    rows: list[torch.Tensor] = []
    where: dict[str, int] = {}
    classes: dict[str, list[int]] = {}
    for name in train_datasets:
        if name not in label_texts or name not in texts:
            raise ValueError(
                f"Recipe '{recipe}': no label texts or embeddings for dataset '{name}'."
            )
        strings, emb = label_texts[name], texts[name]
        if len(strings) != emb.shape[0]:
            raise ValueError(
                f"Recipe '{recipe}': dataset '{name}' has {len(strings)} label texts but "
                f"{emb.shape[0]} embeddings."
            )
        for text, row in zip(strings, emb, strict=True):
            if text not in where:
                where[text] = len(union)
                union.append(text)
                rows.append(row.float())
        classes[name] = [where[t] for t in strings]
    return union, classes, torch.stack(rows)


def union_rows(
    texts: Mapping[str, torch.Tensor],
    dataset_classes: Mapping[str, Sequence[int]],
    union_texts: Sequence[str],
) -> torch.Tensor:
    """``float[K, D]`` unit rows of the union label space assembled from per-dataset rows.

    Args:
        texts: ``{dataset: float[K_d, D]}`` (a class shared by datasets is read from the first).
        dataset_classes: ``{dataset: [union index of each of its classes]}``.
        union_texts: The K union texts (for the error message).
    """
    rows: list[torch.Tensor | None] = [None] * len(union_texts)
    for name, classes in dataset_classes.items():
        if name in texts:
            for c, u in enumerate(classes):
                if rows[u] is None:
                    rows[u] = texts[name][c]
    missing = [union_texts[u] for u, r in enumerate(rows) if r is None]
    if missing:
        raise ValueError(f"No text embedding for union classes {missing[:5]}.")
    return F.normalize(torch.stack(rows).float(), dim=1)  # type: ignore[arg-type]


def union_targets(
    semantic: torch.Tensor, datasets: Sequence[str], dataset_classes: Mapping[str, Sequence[int]]
) -> torch.Tensor:
    """``int64[B, H, W]`` each pixel's union class (``semantic``: each image's own classes;
    255 stays 255); ``datasets`` names each image's dataset."""
    out = torch.full_like(semantic, 255)
    for i, name in enumerate(datasets):
        lookup = torch.tensor(list(dataset_classes[name]), device=out.device)
        valid = semantic[i] != 255
        out[i][valid] = lookup[semantic[i][valid]]
    return out
