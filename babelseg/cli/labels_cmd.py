"""``babelseg labels``: how close are label texts in the embedding space?

Embeds a list of class names (or a dataset's label space) with a text encoder and prints, for
each label, its nearest neighbours by cosine similarity, then the similarity matrix. With
``--plot`` it also draws the matrix as a heat map. The helpers below are importable.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from babelseg.labels.texts import DEFAULT_TEMPLATE, TEXT_MODES

if TYPE_CHECKING:
    import torch

    from babelseg.labels.encoders.base import TextEncoder
    from babelseg.labels.space import LabelSpace

HELP = "Show how label texts relate in a text encoder's embedding space (neighbours, matrix, plot)."
EPILOG = """examples:
  babelseg labels person pedestrian rider car truck
  babelseg labels road "lane marking" crosswalk sidewalk --top 2 --plot labels.png
  babelseg labels --data sw/datasets.yaml --dataset street_a --mode description
  babelseg labels bus "bus: a road vehicle that carries many passengers" --json
  babelseg labels person car --mode template --template "a photo of a {}, in the street."
  babelseg labels person car --encoder clip --clip-model ~/models/clip-vit-base-patch32
  babelseg labels person car --encoder hash --no-cache

A NAME may carry a description after a colon ("bus: a road vehicle ..."), used by
--mode description. Embeddings are cached in $BABELSEG_CACHE (default
~/.cache/babelseg/embeddings); --no-cache encodes afresh without reading or writing it.
"""

ENCODER_CHOICES = ("minilm", "clip", "hash")
"""Same keys as ``babelseg.labels.encoders.ENCODERS`` (kept literal: --help must not load torch)."""
MAX_TABLE_LABELS = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("labels (give NAMEs or --data)")
    src.add_argument(
        "names", nargs="*", metavar="NAME", help="class names (or 'name: description')"
    )
    src.add_argument("--data", type=Path, metavar="DATASETS.yaml", help="dataset declarations file")
    src.add_argument(
        "--dataset",
        metavar="NAME",
        help="dataset in --data whose label space to show (optional when the file declares one); "
        "with NAMEs, the dataset name used by --mode dataset / dataset_description",
    )
    enc = parser.add_argument_group("text encoding")
    enc.add_argument(
        "--encoder",
        choices=ENCODER_CHOICES,
        default="minilm",
        help="text encoder (default: minilm)",
    )
    enc.add_argument(
        "--clip-model", metavar="PATH", help="CLIP folder or hub name (--encoder clip)"
    )
    enc.add_argument(
        "--mode", choices=TEXT_MODES, default="name", help="which text stands for a class"
    )
    enc.add_argument(
        "--template", default=DEFAULT_TEMPLATE, help="template for --mode template ('{}' = name)"
    )
    enc.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    enc.add_argument(
        "--cache-dir", type=Path, metavar="DIR", help="embedding-cache folder ($BABELSEG_CACHE)"
    )
    out = parser.add_argument_group("output")
    out.add_argument("--top", type=int, default=3, metavar="K", help="neighbours per label (3)")
    out.add_argument("--plot", type=Path, metavar="OUT.png", help="write a heat map of the matrix")
    out.add_argument("--json", action="store_true", help="print machine-readable JSON")
    out.add_argument("--debug", action="store_true", help="show tracebacks on errors")


# ---------------------------------------------------------------------- library helpers
def load_label_space(
    *, names: Sequence[str], data: Path | None, dataset: str | None
) -> tuple[LabelSpace, str | None]:
    """The label space to show and the dataset name for ``--mode dataset``.

    Args:
        names: Class names (``"name"`` or ``"name: description"``); exclusive with ``data``.
        data: A ``datasets.yaml`` file.
        dataset: With ``data``: the dataset to use (optional when the file declares one).
            With ``names``: the dataset name for ``--mode dataset``.
    Returns:
        ``(space, dataset name or None)``.
    """
    from babelseg.labels.space import LabelSpace

    if names and data is not None:
        raise ValueError("Give class NAMEs or --data DATASETS.yaml, not both.")
    if data is None:
        if not names:
            raise ValueError(
                "Nothing to show: give class NAMEs (babelseg labels person car) or "
                "--data DATASETS.yaml --dataset NAME."
            )
        return LabelSpace.from_names(list(names), name=dataset or ""), dataset
    from babelseg.data.declaration import load_declarations
    from babelseg.data.label_source import resolve_label_space

    decls = load_declarations(data)
    if dataset is None:
        if len(decls) != 1:
            raise ValueError(
                f"{data} declares {len(decls)} datasets; choose one with --dataset "
                f"({', '.join(decls)})."
            )
        dataset = next(iter(decls))
    if dataset not in decls:
        raise ValueError(f"No dataset '{dataset}' in {data}; it declares: {', '.join(decls)}.")
    return resolve_label_space(decls[dataset]), dataset


def build_encoder(
    *, name: str, clip_model: str | None, use_cache: bool, cache_dir: Path | None
) -> TextEncoder:
    """The text encoder named ``name``, wrapped in the embedding cache unless ``use_cache`` is
    False."""
    from babelseg.labels.cache import CachedTextEncoder, EmbeddingCache
    from babelseg.labels.encoders.factory import build_text_encoder

    if name == "clip":
        if not clip_model:
            raise ValueError("--encoder clip needs --clip-model PATH (a CLIP folder or hub name).")
        encoder = build_text_encoder("clip", name_or_path=clip_model)
    else:
        if clip_model:
            raise ValueError(f"--clip-model only applies to --encoder clip, not '{name}'.")
        encoder = build_text_encoder(name)
    if not use_cache:
        return encoder
    return CachedTextEncoder(encoder, EmbeddingCache(cache_dir))


def similarity_matrix(embeddings: torch.Tensor) -> torch.Tensor:
    """Cosine similarities of unit-norm rows.

    Args:
        embeddings: ``float32[K, D]`` unit-norm rows.
    Returns:
        ``float32[K, K]`` in ``[-1, 1]``.
    """
    return (embeddings @ embeddings.T).clamp(-1.0, 1.0)


def nearest_neighbours(
    sim: torch.Tensor, names: Sequence[str], *, top: int
) -> list[list[tuple[str, float]]]:
    """For each label, the ``top`` other labels with the highest similarity.

    Args:
        sim: ``float[K, K]`` similarity matrix.
        names: K labels.
        top: Neighbours per label (capped at K-1).
    Returns:
        K lists of ``(name, similarity)``, most similar first (ties: lower index first).
    """
    import torch

    k = len(names)
    top = min(top, k - 1)
    masked = sim.clone().float()
    masked.fill_diagonal_(-torch.inf)
    result = []
    for i in range(k):
        # Stable sort keeps index order among ties.
        order = torch.sort(masked[i], descending=True, stable=True).indices[:top]
        result.append([(names[j], float(sim[i, j])) for j in order.tolist()])
    return result


def format_matrix(
    sim: torch.Tensor, names: Sequence[str], *, max_labels: int = MAX_TABLE_LABELS
) -> str:
    """An aligned text table of the similarity matrix (first ``max_labels`` labels, with a note
    when there are more)."""
    n = min(len(names), max_labels)
    shown = list(names[:n])
    row_w = max(len(s) for s in shown)
    col_w = [max(6, len(s)) for s in shown]
    lines = [" " * row_w + "".join(f"  {s:>{w}}" for s, w in zip(shown, col_w))]
    for i, s in enumerate(shown):
        cells = "".join(f"  {float(sim[i, j]):>{w}.3f}" for j, w in enumerate(col_w))
        lines.append(f"{s:<{row_w}}{cells}")
    if len(names) > n:
        lines.append(f"(showing the first {n} of {len(names)} labels; --json or --plot show all)")
    return "\n".join(lines)


def plot_similarity(
    sim: torch.Tensor, names: Sequence[str], path: Path, *, title: str = ""
) -> Path:
    """Write the similarity matrix as a heat map (matplotlib, Agg; no global backend change).

    Args:
        sim: ``float[K, K]`` similarity matrix.
        names: K tick labels.
        path: Output image (format from the suffix, e.g. ``.png``); parent folders are created.
        title: Figure title.
    Returns:
        ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(names)
    side = min(max(4.0, 0.32 * k + 2.5), 40.0)
    fig = Figure(figsize=(side + 1.2, side))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    values = sim.detach().cpu().float().numpy()
    im = ax.imshow(values, cmap="viridis", vmin=min(0.0, float(values.min())), vmax=1.0)
    font = max(4.0, min(10.0, 300.0 / max(k, 1)))
    ax.set_xticks(range(k), labels=list(names), rotation=90, fontsize=font)
    ax.set_yticks(range(k), labels=list(names), fontsize=font)
    if k <= 12:
        for i in range(k):
            for j in range(k):
                color = "black" if values[i, j] > 0.6 else "white"
                ax.text(
                    j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7, color=color
                )
    fig.colorbar(im, ax=ax, label="cosine similarity")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


# ---------------------------------------------------------------------- command
def run(args: argparse.Namespace) -> int:
    from babelseg.labels.texts import encode_label_space, label_texts

    if args.top < 1:
        raise ValueError(f"--top must be at least 1, got {args.top}.")
    space, dataset = load_label_space(names=args.names, data=args.data, dataset=args.dataset)
    texts = label_texts(space, mode=args.mode, template=args.template, dataset=dataset)
    try:
        encoder = build_encoder(
            name=args.encoder,
            clip_model=args.clip_model,
            use_cache=not args.no_cache,
            cache_dir=args.cache_dir,
        )
        emb = encode_label_space(
            space, encoder, mode=args.mode, template=args.template, dataset=dataset
        )
    except ImportError as e:
        if args.debug:
            raise
        print(f"babelseg labels: error: {e}", file=sys.stderr)
        return 2
    names = space.names
    sim = similarity_matrix(emb)
    neighbours = nearest_neighbours(sim, names, top=args.top)
    title = f"{space.name or 'labels'} · {encoder.id} · {args.mode}"
    plot = plot_similarity(sim, names, args.plot, title=title) if args.plot else None
    if args.json:
        report: dict[str, Any] = {
            "label_space": space.name,
            "encoder": encoder.id,
            "mode": args.mode,
            "labels": names,
            "texts": texts,
            "neighbours": {
                n: [{"label": m, "similarity": round(s, 6)} for m, s in nb]
                for n, nb in zip(names, neighbours)
            },
            "similarity": [[round(float(v), 6) for v in row] for row in sim.tolist()],
            "plot": str(plot) if plot else None,
        }
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    where = f"'{space.name}' " if space.name else ""
    print(f"Label space {where}({len(names)} classes), encoder {encoder.id}, text mode {args.mode}")
    if args.mode != "name":
        print("\nTexts:")
        width = max(len(n) for n in names)
        for n, t in zip(names, texts):
            print(f"  {n:<{width}}  {t}")
    print("\nNearest neighbours (cosine similarity):")
    width = max(len(n) for n in names)
    for n, nb in zip(names, neighbours):
        cells = ", ".join(f"{m} {s:.3f}" for m, s in nb) or "(no other labels)"
        print(f"  {n:<{width}}  {cells}")
    print("\nCosine similarity:")
    print(format_matrix(sim, names))
    if plot:
        print(f"\nWrote heat map to {plot}")
    return 0
