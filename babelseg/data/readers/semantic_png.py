"""The ``semantic-png`` format: an image folder, a label-PNG folder and a label table.

Split keys (see ``babelseg.data.declaration``):

* ``images``, ``labels``: folders (searched recursively, so Cityscapes' city sub-folders work;
  a label is looked up in the same sub-folder as its image, then at the top of ``labels``).
* ``image_pattern``: file name of an image, with ``{stem}`` where the image id goes
  (e.g. ``"{stem}_leftImg8bit.png"``). Default: any image file; the id is the file stem.
* ``label_pattern``: file name of the label of image ``{stem}`` (e.g.
  ``"{stem}_gtFine_labelTrainIds.png"``). Default ``"{stem}.png"``.
* ``split_file``: text file with one id per line (a stem, or ``sub/folder/stem``); only those
  images, in that order. Blank lines and lines starting with ``#`` are skipped.

Options (``options:`` of the declaration):

* ``reduce_zero_label`` (bool): the mmseg convention: on-disk 0 becomes ignore, k becomes k-1
  (and 255 stays ignore), then the label-space lookup. Not needed with the ``ade20k-150`` card,
  whose classes keep their on-disk values 1..150.
* ``id_map`` (``{raw: target}``): explicit table for on-disk values, applied before the lookup
  and instead of ``reduce_zero_label`` for the values it lists. ``target`` is a label-space value
  (int), a class name (str), or null (ignore). Values it does not list pass through unchanged.
* ``label_encoding`` (``values`` | ``color``) and ``ignore_colors``: single-channel or
  colour-coded label files (see ``babelseg.data.label_encoding``).
* ``confirmed_ignore`` (list of values): ignore values that really are unlabelled pixels, for the
  mislabelling checks of ``babelseg datasets check`` (see ``babelseg.data.label_audit``).

``reduce_zero_label`` on a label space whose classes start at 1 (e.g. card ``ade20k-150``) is an
error: it would shift every class onto its neighbour.

Every raw value is resolved through one ``int64[65536]`` table, so decoding a label is one
indexing operation and ``babelseg datasets check`` can count raw values before the lookup.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from babelseg.data.declaration import DatasetDecl
from babelseg.data.image_io import read_rgb
from babelseg.data.label_audit import declaration_problems
from babelseg.data.label_encoding import label_decoder
from babelseg.data.readers.base import DatasetReader
from babelseg.data.sample import Sample
from babelseg.labels.space import IGNORE_INDEX, MAX_DISK_VALUE, LabelSpace
from babelseg.labels.text_files import read_text_file

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
OPTION_KEYS = (
    "reduce_zero_label",
    "id_map",
    "label_encoding",
    "ignore_colors",
    "confirmed_ignore",
)
DEFAULT_LABEL_PATTERN = "{stem}.png"


@dataclass(frozen=True)
class SemanticPngItem:
    """One image of a split and the label file that belongs to it."""

    image_id: str
    image: Path
    label: Path


@dataclass
class SemanticPngIndex:
    """The files of one split.

    Attributes:
        items: Images whose label file exists, in split order.
        missing_labels: Images whose label file does not exist.
        missing_images: Ids listed in the split file that match no image.
    """

    items: list[SemanticPngItem] = field(default_factory=list)
    missing_labels: list[SemanticPngItem] = field(default_factory=list)
    missing_images: list[str] = field(default_factory=list)


def _pattern_regex(pattern: str, what: str, where: str) -> re.Pattern[str]:
    if pattern.count("{stem}") != 1:
        raise ValueError(
            f"{where}: {what} '{pattern}' must contain '{{stem}}' exactly once "
            "(e.g. '{stem}_leftImg8bit.png')."
        )
    head, tail = pattern.split("{stem}")
    return re.compile(re.escape(head) + r"(?P<stem>.+)" + re.escape(tail))


def _few(items: list[str], n: int = 5) -> str:
    shown = ", ".join(items[:n])
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")


def _image_files(
    images_dir: Path, image_regex: re.Pattern | None, skip_labels: re.Pattern | None
) -> dict[str, list[Path]]:
    """``{id: image files}`` under ``images_dir`` (id = stem, and also ``sub/folder/stem`` for
    files in sub-folders); ``skip_labels`` matches label files living next to the images."""
    found: dict[str, list[Path]] = {}
    for path in sorted(images_dir.rglob("*")):
        name = path.name
        if name.startswith(".") or not path.is_file():
            continue
        if image_regex is not None:
            m = image_regex.fullmatch(name)
            if m is None:
                continue
            stem = m.group("stem")
        else:
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            if skip_labels is not None and skip_labels.fullmatch(name):
                continue  # a label file living next to the images
            stem = path.stem
        rel_dir = path.parent.relative_to(images_dir).as_posix()
        found.setdefault(stem, []).append(path)
        if rel_dir != ".":
            found.setdefault(f"{rel_dir}/{stem}", []).append(path)
    return found


def _wanted_ids(
    spec: Mapping[str, Any], found: Mapping[str, list[Path]], where: str, root: Path
) -> list[str]:
    """The ids of a split: its ``split_file`` lines, or every top-level id found."""
    if "split_file" not in spec:
        return sorted({k for k in found if "/" not in k}, key=lambda k: str(found[k][0]))
    split_file = Path(spec["split_file"])
    if not split_file.is_file():
        raise FileNotFoundError(
            f"{where}: split_file {split_file} does not exist. Fix 'split_file' (relative to "
            f"the dataset root {root}) or remove it to use every image."
        )
    return [
        line.strip()
        for line in read_text_file(split_file, what="split file").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def index_split(decl: DatasetDecl, split: str) -> SemanticPngIndex:
    """List the images of one split and find their labels (no pixel decoding).

    Raises:
        FileNotFoundError: the images/labels folder or the split file is missing.
        ValueError: a bad pattern, or two selected images with the same id.
    """
    spec = decl.split(split)
    where = f"{decl.source} (dataset '{decl.name}', split '{split}')"
    images_dir, labels_dir = Path(spec["images"]), Path(spec["labels"])
    for key, folder in (("images", images_dir), ("labels", labels_dir)):
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{where}: the {key} folder {folder} does not exist. Fix '{key}' in the split "
                f"(relative paths are relative to the dataset root {decl.root})."
            )
    label_pattern = str(spec.get("label_pattern", DEFAULT_LABEL_PATTERN))
    label_regex = _pattern_regex(label_pattern, "label_pattern", where)
    image_regex = None
    if "image_pattern" in spec:
        image_regex = _pattern_regex(str(spec["image_pattern"]), "image_pattern", where)
    same_folder = images_dir.resolve() == labels_dir.resolve()

    skip_labels = label_regex if same_folder and "label_pattern" in spec else None
    found = _image_files(images_dir, image_regex, skip_labels)

    wanted = _wanted_ids(spec, found, where, decl.root)

    index = SemanticPngIndex()
    seen: dict[str, Path] = {}
    for key in wanted:
        paths = found.get(key)
        if paths is None:
            index.missing_images.append(key)
            continue
        if len(paths) > 1:
            raise ValueError(
                f"{where}: image id '{key}' matches several files ({paths[0]}, {paths[1]}); ids "
                "must be unique. Rename the files, narrow image_pattern, or list "
                "'sub/folder/stem' ids in a split_file."
            )
        image = paths[0]
        m = image_regex.fullmatch(image.name) if image_regex else None
        stem = m.group("stem") if m else image.stem
        if stem in seen:
            raise ValueError(
                f"{where}: two images share the id '{stem}' ({seen[stem]} and {image}); "
                "ids must be unique."
            )
        seen[stem] = image
        label_name = label_pattern.replace("{stem}", stem)
        rel_dir = image.parent.relative_to(images_dir)
        label = labels_dir / rel_dir / label_name
        if not label.is_file() and (labels_dir / label_name).is_file():
            label = labels_dir / label_name
        item = SemanticPngItem(image_id=stem, image=image, label=label)
        (index.items if label.is_file() else index.missing_labels).append(item)
    return index


def value_table(
    label_space: LabelSpace, options: Mapping[str, object], where: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """Resolve every possible on-disk value to a class index in one table.

    Args:
        label_space: The dataset's label space.
        options: The declaration's options (``reduce_zero_label``, ``id_map``).
        where: Prefix for error messages (file and dataset).
    Returns:
        ``(table, known)``: ``int64[65536]`` class index of each raw value (``IGNORE_INDEX`` for
        ignore and unknown values) and ``bool[65536]``, True where the raw value is a class or
        an ignore value (False: *unknown*, reported by ``babelseg datasets check``).
    Raises:
        ValueError: an ``id_map`` entry with a bad key or a target the label space lacks.
    """
    raw = np.arange(MAX_DISK_VALUE + 1, dtype=np.int64)
    value = raw.copy()
    forced_ignore = np.zeros(raw.shape, dtype=bool)
    if options.get("reduce_zero_label", False):
        value = raw - 1
        forced_ignore |= (raw == 0) | (value == IGNORE_INDEX - 1) | (value == IGNORE_INDEX)
        value[raw == 0] = IGNORE_INDEX
    lookup = label_space.lookup_table()
    known_values = np.zeros(raw.shape, dtype=bool)
    for i in range(len(label_space)):
        known_values[label_space.value_of(i)] = True
    for v in label_space.ignore_values:
        if 0 <= v <= MAX_DISK_VALUE:
            known_values[v] = True
    table = lookup[np.clip(value, 0, MAX_DISK_VALUE)]
    known = known_values[np.clip(value, 0, MAX_DISK_VALUE)] & (value >= 0)
    table[forced_ignore] = IGNORE_INDEX
    known[forced_ignore] = True

    id_map = options.get("id_map") or {}
    if not isinstance(id_map, Mapping):
        raise ValueError(f"{where}: option id_map must be a mapping {{raw value: target}}.")
    for key, target in id_map.items():
        try:
            src = int(key)
        except (TypeError, ValueError):
            raise ValueError(
                f"{where}: id_map key '{key}' is not an integer on-disk value."
            ) from None
        if not 0 <= src <= MAX_DISK_VALUE:
            raise ValueError(f"{where}: id_map key {src} is outside 0..{MAX_DISK_VALUE}.")
        if target is None or (isinstance(target, str) and target.lower() == "ignore"):
            table[src], known[src] = IGNORE_INDEX, True
        elif isinstance(target, str):
            table[src], known[src] = label_space.index(target), True
        else:
            t = int(target)
            if not 0 <= t <= MAX_DISK_VALUE or not known_values[t]:
                raise ValueError(
                    f"{where}: id_map maps {src} to {t}, which is neither a class value nor an "
                    f"ignore value of label space '{label_space.name}'. Use a class name, a "
                    "class value, or null for ignore."
                )
            table[src], known[src] = lookup[t], True
    return table, known


def check_options(decl: DatasetDecl, allowed: tuple[str, ...]) -> None:
    """ValueError naming the dataset when ``decl.options`` has keys the format does not take."""
    unknown = sorted(set(decl.options) - set(allowed))
    if unknown:
        raise ValueError(
            f"{decl.source} (dataset '{decl.name}'): unknown options {unknown} for format "
            f"{decl.format}; it takes {sorted(allowed)}."
        )


class SemanticPngReader(DatasetReader):
    """Reads a ``semantic-png`` split: RGB image + label PNG -> ``Sample.semantic``.

    Args:
        decl: The dataset declaration (format ``semantic-png``).
        split: Split name.
        label_space: The dataset's label space.

    Raises:
        FileNotFoundError: folders or split file missing, or images without labels.
        ValueError: bad patterns or options, duplicate ids.
    """

    def __init__(self, decl: DatasetDecl, split: str, label_space: LabelSpace) -> None:
        super().__init__(decl, split, label_space)
        check_options(decl, OPTION_KEYS)
        where = f"{decl.source} (dataset '{decl.name}', split '{split}')"
        self.index = index_split(decl, split)
        if self.index.missing_images:
            raise FileNotFoundError(
                f"{where}: the split file lists ids with no image: "
                f"{_few(self.index.missing_images)}. Fix the split file or image_pattern."
            )
        if self.index.missing_labels:
            stems = [it.image_id for it in self.index.missing_labels]
            first = self.index.missing_labels[0].label
            raise FileNotFoundError(
                f"{where}: {len(stems)} images have no label file: {_few(stems)} (e.g. expected "
                f"{first}). Fix label_pattern or the labels folder, or leave those images out "
                "with a split_file."
            )
        problems = declaration_problems(label_space, decl.options)
        if problems:
            raise ValueError(f"{where}: {problems[0]}")
        self.table, self.known = value_table(label_space, decl.options, where)
        self.decoder = label_decoder(label_space, decl.options, where)

    def __len__(self) -> int:
        return len(self.index.items)

    def image_ids(self) -> list[str]:
        return [it.image_id for it in self.index.items]

    def raw_label(self, index: int) -> np.ndarray:
        """``uint8|uint16[H, W]`` on-disk label values of image ``index``."""
        return self.decoder.read(self.index.items[index].label)

    def __getitem__(self, index: int) -> Sample:
        """Decode image ``index``.

        Returns:
            A Sample with ``image`` ``uint8[H, W, 3]`` and ``semantic`` ``int64[H, W]`` (class
            indices, ``IGNORE_INDEX`` for ignore and unknown values); ``masks`` None.
        Raises:
            ValueError: image and label differ in size (both files named).
        """
        item = self.index.items[index]
        image = read_rgb(item.image)
        raw = self.decoder.read(item.label)
        self._check_same_size(
            image,
            item.image,
            raw,
            item.label,
            what="label",
            fix="re-export the label at the image size or fix label_pattern.",
        )
        return self._sample(
            image=image, image_id=item.image_id, path=item.image, semantic=self.table[raw]
        )
