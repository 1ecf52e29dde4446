"""Which images ``predict`` reads, and the output names that keep every prediction apart.

Folders are searched recursively (e.g. Cityscapes ``leftImg8bit/val/<city>/``) and each output
keeps the image's path relative to the folder named on the command line, so two cities' files
with the same name land in two output folders. Images named directly keep their file name. Two
images of one folder that share a stem (``photo.png``, ``photo.jpg``) get their extension in the
output name (``photo_png``, ``photo_jpg``). Any output file that two images would still share
(also a label PNG against another image's overlay) is an error before anything is predicted:
nothing is ever silently overwritten.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class PlannedImage:
    """One input image and the output name (a relative path without extension) of its files.

    Attributes:
        source: The image file.
        relative: Its path relative to the folder named on the command line (its file name when
            the file itself was named).
        name: The output name, e.g. ``frankfurt/frankfurt_000000_000294_leftImg8bit`` (POSIX).
    """

    source: Path
    relative: PurePosixPath
    name: str

    def outputs(self) -> list[str]:
        """The output files of this image, relative to ``--out`` (label PNG, overlay)."""
        return [f"{self.name}.png", f"{self.name}_overlay.png"]


def _is_inside(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def collect_images(
    inputs: list[str], *, exclude: Path | None = None
) -> list[tuple[Path, PurePosixPath]]:
    """Image files named directly or found recursively (sorted) in named folders.

    Args:
        inputs: Files and folders from the command line.
        exclude: A folder whose files are never inputs (the output folder).
    Returns:
        ``(file, path relative to the named folder, or its file name)`` pairs.
    Raises:
        FileNotFoundError: an input that does not exist, or a folder without images.
    """
    found: list[tuple[Path, PurePosixPath]] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = sorted(
                f
                for f in p.rglob("*")
                if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file() and not _is_inside(f, exclude)
            )
            if not files:
                raise FileNotFoundError(
                    f"No images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {p} or its sub-folders."
                )
            found.extend((f, PurePosixPath(f.relative_to(p).as_posix())) for f in files)
        elif p.is_file():
            found.append((p, PurePosixPath(p.name)))
        else:
            raise FileNotFoundError(f"Input not found: {p}. Give image files or folders.")
    return found


def plan_outputs(found: list[tuple[Path, PurePosixPath]]) -> list[PlannedImage]:
    """Output names for the images of :func:`collect_images`.

    Raises:
        ValueError: two images would write the same output file (naming both and the fix).
    """
    stems = Counter(str(rel.with_suffix("")) for _, rel in found)
    planned = []
    for source, rel in found:
        stem = str(rel.with_suffix(""))
        if stems[stem] > 1:  # photo.png + photo.jpg in one folder
            stem = f"{stem}_{rel.suffix.lstrip('.').lower()}"
        planned.append(PlannedImage(source=source, relative=rel, name=stem))
    writers: dict[str, list[Path]] = defaultdict(list)
    for image in planned:
        for output in image.outputs():
            writers[output].append(image.source)
    clashes = {name: sources for name, sources in writers.items() if len(sources) > 1}
    if clashes:
        name, sources = next(iter(clashes.items()))
        raise ValueError(
            f"{len(clashes)} output file(s) would be written by more than one input, e.g. "
            f"{name} by {' and '.join(str(s) for s in sources)}. Predict those inputs into "
            "separate --out folders, or name their common parent folder (outputs keep the path "
            "relative to it)."
        )
    return planned
