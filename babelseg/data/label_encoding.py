"""How a label file stores its values: class values (grey, 16-bit, palette) or colours.

Option ``label_encoding`` of a ``semantic-png`` declaration:

* ``values`` (default): single-channel PNGs (grey, 16-bit, palette indices; RGB files whose three
  channels are equal are read as grey), see :func:`babelseg.data.image_io.read_label_png`.
* ``color``: colour-coded PNGs (one RGB colour per class, as CamVid's original labels and many
  in-house sets). The colour of each class comes from the label space (``color`` in the label YAML,
  or the card's colours). Colours listed in option ``ignore_colors`` (default ``[[0, 0, 0]]``
  unless a class is black) become the space's first ignore value. Any other colour is an error
  listing the first few, with their pixel counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from babelseg.data.image_io import read_label_png, read_rgb
from babelseg.labels.space import LabelSpace

ENCODINGS = ("values", "color")
MAX_LISTED_COLORS = 5


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """``uint8[..., 3]`` colours -> ``int64[...]`` keys ``R * 65536 + G * 256 + B``."""
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _rgb(key: int) -> tuple[int, int, int]:
    return (key >> 16) & 255, (key >> 8) & 255, key & 255


@dataclass(frozen=True)
class ColorTable:
    """Sorted colour keys and the on-disk value each one stands for.

    Attributes:
        keys: ``int64[N]`` packed colours, ascending.
        values: ``int64[N]`` the class value (or ignore value) of each colour.
        space_name: Label space name, for messages.
    """

    keys: np.ndarray
    values: np.ndarray
    space_name: str

    def decode(self, rgb: np.ndarray, path: str | Path) -> np.ndarray:
        """Colours of a label image -> on-disk values.

        Args:
            rgb: ``uint8[H, W, 3]`` label colours.
            path: The file (for the error message).
        Returns:
            ``uint16[H, W]`` values.
        Raises:
            ValueError: colours the table does not know (the first few listed with pixel counts).
        """
        colors, inverse, counts = np.unique(
            pack_rgb(rgb).ravel(), return_inverse=True, return_counts=True
        )
        pos = np.clip(np.searchsorted(self.keys, colors), 0, len(self.keys) - 1)
        found = self.keys[pos] == colors
        if not found.all():
            bad = np.flatnonzero(~found)
            order = bad[np.argsort(-counts[bad])][:MAX_LISTED_COLORS]
            listed = ", ".join(f"{_rgb(int(colors[i]))}: {int(counts[i])} px" for i in order)
            raise ValueError(
                f"Label image {path} has {len(bad)} colours that are not in the colour table of "
                f"'{self.space_name}' (first: {listed}). Give those classes a `color` in the "
                "label YAML, list the colours in option ignore_colors, or set "
                "label_encoding: values if the file holds class values."
            )
        return self.values[pos][inverse].reshape(rgb.shape[:2]).astype(np.uint16)


def color_table(
    space: LabelSpace, ignore_colors: Sequence[Sequence[int]] | None, where: str
) -> ColorTable:
    """The colour -> value table of a label space.

    Raises:
        ValueError: a class without a colour, two classes sharing a colour, a bad ignore colour,
            or a space without an ignore value while ignore colours are given.
    """
    owner: dict[int, str] = {}
    keys, values = [], []
    for i, c in enumerate(space.classes):
        if c.color is None:
            raise ValueError(
                f"{where}: label_encoding: color needs a colour for every class, but class "
                f"'{c.name}' has none; add `color: [R, G, B]` to it in the label YAML."
            )
        key = int(pack_rgb(np.asarray(c.color, dtype=np.uint8)))
        if key in owner:
            raise ValueError(
                f"{where}: classes '{owner[key]}' and '{c.name}' share the colour {tuple(c.color)},"
                " so colour-coded labels cannot tell them apart; give them distinct colours or "
                "use single-channel labels (label_encoding: values)."
            )
        owner[key] = c.name
        keys.append(key)
        values.append(space.value_of(i))
    if ignore_colors is None:
        ignore_colors = [] if 0 in owner else [[0, 0, 0]]
    for col in ignore_colors:
        if len(col) != 3 or not all(0 <= int(v) <= 255 for v in col):
            raise ValueError(f"{where}: ignore_colors entry {col!r} is not an [R, G, B] colour.")
        key = int(pack_rgb(np.asarray(col, dtype=np.uint8)))
        if key in owner:
            raise ValueError(
                f"{where}: ignore colour {tuple(col)} is the colour of class '{owner[key]}'."
            )
        if not space.ignore_values:
            raise ValueError(
                f"{where}: ignore_colors needs the label space to have an ignore value."
            )
        owner[key] = "ignore"
        keys.append(key)
        values.append(space.ignore_values[0])
    order = np.argsort(keys)
    return ColorTable(
        keys=np.asarray(keys, dtype=np.int64)[order],
        values=np.asarray(values, dtype=np.int64)[order],
        space_name=space.name,
    )


@dataclass(frozen=True)
class LabelDecoder:
    """Reads the on-disk values of one dataset's label files.

    Attributes:
        colors: The colour table for ``label_encoding: color``; None for single-channel values.
    """

    colors: ColorTable | None = None

    def read(self, path: str | Path) -> np.ndarray:
        """``uint8|uint16[H, W]`` on-disk values of a label file."""
        if self.colors is None:
            return read_label_png(path)
        return self.colors.decode(read_rgb(path), path)


def label_decoder(space: LabelSpace, options: Mapping[str, object], where: str) -> LabelDecoder:
    """The decoder the declaration's options ask for (``label_encoding``, ``ignore_colors``)."""
    encoding = str(options.get("label_encoding", "values"))
    if encoding not in ENCODINGS:
        raise ValueError(
            f"{where}: label_encoding '{encoding}' is not one of {list(ENCODINGS)}; use 'values' "
            "for single-channel labels or 'color' for colour-coded PNGs."
        )
    ignore_colors = options.get("ignore_colors")
    if encoding == "values":
        if ignore_colors is not None:
            raise ValueError(f"{where}: ignore_colors only applies with label_encoding: color.")
        return LabelDecoder()
    if ignore_colors is not None and not isinstance(ignore_colors, (list, tuple)):
        raise ValueError(f"{where}: ignore_colors must be a list of [R, G, B] colours.")
    return LabelDecoder(colors=color_table(space, ignore_colors, where))  # type: ignore[arg-type]
