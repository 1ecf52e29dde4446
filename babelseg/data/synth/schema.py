"""Validation helpers for the SynthWorld YAML: every error names the file and the key path.

Values are read from plain mappings (``yaml.safe_load`` output) and turned into tuples and
floats; a wrong value raises ``ValueError("FILE: KEY: what is wrong; what to do")``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

_REQUIRED = object()


class Where:
    """A position in a YAML document, for error messages.

    Args:
        source: The file (or ``"<dict>"``) the document came from.
        path: Dotted key path inside the document (e.g. ``"classes[3](car).texture"``).
    """

    def __init__(self, source: str, path: str = "") -> None:
        self.source = source
        self.path = path

    def __truediv__(self, key: str | int) -> Where:
        if isinstance(key, int):
            return Where(self.source, f"{self.path}[{key}]")
        return Where(self.source, f"{self.path}.{key}" if self.path else str(key))

    def error(self, message: str) -> ValueError:
        return ValueError(f"{self.source}: {self.path or '<top>'}: {message}")


def suggest(name: str, valid: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a valid name is close to ``name``, else ``""``."""
    close = difflib.get_close_matches(str(name), list(valid), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_keys(
    data: Any, allowed: Iterable[str], where: Where, required: Iterable[str] = ()
) -> dict:
    """Check that ``data`` is a mapping with only ``allowed`` keys and all ``required`` keys."""
    if not isinstance(data, Mapping):
        raise where.error(f"expected a mapping, got {type(data).__name__} ({data!r}).")
    allowed = list(allowed)
    for key in data:
        if isinstance(key, bool):
            raise (where / str(key)).error(
                "YAML reads an unquoted on/off/yes/no key as a boolean; quote it or fix the "
                "key name."
            )
        if key not in allowed:
            raise (where / str(key)).error(
                f"unknown key{suggest(key, allowed)}; allowed keys: {sorted(allowed)}."
            )
    for key in required:
        if key not in data:
            raise (where / key).error("missing required key.")
    return dict(data)


def get_str(data: Mapping, key: str, where: Where, default: Any = _REQUIRED) -> str:
    if key not in data:
        if default is _REQUIRED:
            raise (where / key).error("missing required key.")
        return default
    value = data[key]
    if not isinstance(value, str) or not value.strip():
        raise (where / key).error(f"expected a non-empty string, got {value!r}.")
    return value.strip()


def is_path_component(name: object) -> bool:
    """Whether ``name`` is safe as ONE folder or file name: a non-empty string without path
    separators, ``.``/``..``, a drive or NUL (so joining it to a folder stays inside it)."""
    if not isinstance(name, str) or name in ("", ".", "..") or name != name.strip():
        return False
    return not any(c in name for c in ("/", "\\", "\x00", ":"))


def get_path_component(data: Mapping, key: str, where: Where) -> str:
    """A required string that becomes a folder name (see :func:`is_path_component`)."""
    value = get_str(data, key, where)
    if not is_path_component(value):
        raise (where / key).error(
            f"{value!r} becomes a folder name, so it must be one path component: no '/', '\\', "
            "':', and not '.' or '..'. Rename it."
        )
    return value


def get_choice(
    data: Mapping, key: str, choices: Iterable[str], where: Where, default: Any = _REQUIRED
) -> str:
    choices = list(choices)
    value = get_str(data, key, where, default)
    if value not in choices and value is not default:
        raise (where / key).error(f"'{value}' is not one of {choices}{suggest(value, choices)}.")
    return value


def get_bool(data: Mapping, key: str, where: Where, default: bool = False) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise (where / key).error(f"expected true or false, got {value!r}.")
    return value


def get_number(
    data: Mapping,
    key: str,
    where: Where,
    default: Any = _REQUIRED,
    lo: float | None = None,
    hi: float | None = None,
) -> float:
    if key not in data:
        if default is _REQUIRED:
            raise (where / key).error("missing required key.")
        return default
    return to_number(data[key], where / key, lo=lo, hi=hi)


def to_number(value: Any, where: Where, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise where.error(f"expected a number, got {value!r}.")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise where.error(f"{value} is outside [{lo}, {hi}].")
    return float(value)


def get_range(
    data: Mapping,
    key: str,
    where: Where,
    default: Any = _REQUIRED,
    lo: float | None = None,
    hi: float | None = None,
    integer: bool = False,
) -> Any:
    """A ``[low, high]`` pair (a single number ``x`` means ``[x, x]``), low <= high."""
    if key not in data:
        if default is _REQUIRED:
            raise (where / key).error("missing required key.")
        return default
    value = data[key]
    w = where / key
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value, value]
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise w.error(f"expected [low, high], got {value!r}.")
    a, b = (to_number(v, w, lo=lo, hi=hi) for v in value)
    if a > b:
        raise w.error(f"low {a} is above high {b}.")
    if integer:
        if a != int(a) or b != int(b):
            raise w.error(f"expected whole numbers, got {value!r}.")
        return (int(a), int(b))
    return (a, b)


def get_vector(
    data: Mapping,
    key: str,
    where: Where,
    size: int,
    default: Any = _REQUIRED,
    lo: float | None = None,
) -> tuple[float, ...]:
    if key not in data:
        if default is _REQUIRED:
            raise (where / key).error("missing required key.")
        return default
    value = data[key]
    w = where / key
    if not isinstance(value, (list, tuple)) or len(value) != size:
        raise w.error(f"expected a list of {size} numbers, got {value!r}.")
    return tuple(to_number(v, w, lo=lo) for v in value)


def get_names(
    data: Mapping, key: str, where: Where, valid: Iterable[str], default: Any = ()
) -> tuple:
    """A list of names, each one of ``valid``."""
    if key not in data:
        return default
    value = data[key]
    w = where / key
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise w.error(f"expected a list of names, got {value!r}.")
    valid = list(valid)
    for v in value:
        if v not in valid:
            raise w.error(f"'{v}' is not one of {valid}{suggest(v, valid)}.")
    return tuple(str(v) for v in value)


def plain(value: Any) -> Any:
    """Tuples to lists, recursively (for ``yaml.safe_dump``)."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
