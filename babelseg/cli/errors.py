"""The one line a user sees for an error: the message alone, wherever it was raised.

An error raised inside a DataLoader worker process reaches the main process re-raised by torch
as ``"Caught ValueError in DataLoader worker process 0.\\nOriginal Traceback (most recent call
last): ..."`` followed by the worker's whole traceback; the message at its end (which names the
file and the fix) is what the user needs.
"""

from __future__ import annotations

import re

_WORKER_HEAD = re.compile(r"^Caught \w+ in DataLoader worker process \d+\.\nOriginal Traceback")
_TRACEBACK = "Traceback (most recent call last):\n"
_TYPE_PREFIX = re.compile(r"^[\w.]+: ")


def worker_message(text: str) -> str:
    """The original exception's message when ``text`` is torch's re-raised worker error, else
    ``text`` unchanged."""
    if not _WORKER_HEAD.match(text):
        return text
    last = text.rsplit(_TRACEBACK, 1)[-1]  # the final exception of a chain
    lines = last.splitlines()
    start = next((i for i, line in enumerate(lines) if line and not line.startswith(" ")), None)
    if start is None:
        return text
    message = "\n".join(lines[start:]).strip()
    return _TYPE_PREFIX.sub("", message, count=1)


def error_text(error: BaseException) -> str:
    """What ``babelseg`` prints after ``error:`` for an expected error (bad input, data)."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return worker_message(text)
