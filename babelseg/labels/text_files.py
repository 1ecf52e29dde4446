"""Reading the text files users write (label lists, label spaces, configs, declarations): a file
that is not UTF-8 is an error naming the file and the fix, not a bare codec error."""

from __future__ import annotations

from pathlib import Path


def read_text_file(path: str | Path, *, what: str = "file") -> str:
    """The text of a UTF-8 file (a UTF-8 byte-order mark is dropped).

    Args:
        path: The file.
        what: What it is, for the message (e.g. ``"label space"``).
    Raises:
        ValueError: the file is not valid UTF-8 (naming the file, the byte position and the fix).
    """
    p = Path(path)
    data = p.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ValueError(
            f"{what.capitalize()} {p} is not UTF-8 text (byte 0x{data[e.start]:02x} at line "
            f"{line}, byte offset {e.start}). Save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8 "
            f"{p.name} > fixed`)."
        ) from None
