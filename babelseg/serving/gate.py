"""Admission control for predictions: a few run at once, a bounded number wait, the rest are
told to come back (503) instead of piling up memory."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from babelseg.serving.uploads import UploadRejected

T = TypeVar("T")


class Gate:
    """At most ``concurrency`` calls inside :meth:`run` at once, ``queue`` more waiting.

    Args:
        concurrency: Calls that may run at the same time.
        queue: Admitted calls that may wait for a free slot.
    """

    def __init__(self, *, concurrency: int, queue: int) -> None:
        if concurrency < 1 or queue < 0:
            raise ValueError(
                f"Gate needs concurrency >= 1 and queue >= 0, got {concurrency}, {queue}."
            )
        self.concurrency = concurrency
        self.queue = queue
        self._slots = threading.Semaphore(concurrency)
        self._lock = threading.Lock()
        self.admitted = 0
        self.running = 0
        self.peak_running = 0

    @contextmanager
    def ticket(self) -> Iterator[None]:
        """Admit one request for its whole life, or raise UploadRejected(503) when full."""
        with self._lock:
            if self.admitted >= self.concurrency + self.queue:
                raise UploadRejected(
                    503,
                    f"The server is busy ({self.admitted} requests running or waiting); "
                    "try again in a moment.",
                )
            self.admitted += 1
        try:
            yield
        finally:
            with self._lock:
                self.admitted -= 1

    def run(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        """``fn(**kwargs)`` once a slot is free (blocks the calling worker thread until then)."""
        with self._slots:
            with self._lock:
                self.running += 1
                self.peak_running = max(self.peak_running, self.running)
            try:
                return fn(**kwargs)
            finally:
                with self._lock:
                    self.running -= 1
