"""Helper processes (data-loading and rendering workers) that die with the process that made them.

A worker blocked on a full queue never notices that its parent was killed (``kill -9``, or a
SIGTERM whose default action skips every cleanup), and lives on holding its memory. On Linux
the kernel delivers SIGKILL to a worker whose parent dies (``prctl(PR_SET_PDEATHSIG)``);
elsewhere a daemon thread polls the parent's pid twice a second and exits.

Use :class:`WorkerInit` as a DataLoader's ``worker_init_fn`` (it also carries the image pixel
limit into workers started with ``spawn``), and :func:`die_with_parent` in any other pool's
initializer.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

from babelseg.data.image_limits import max_image_pixels, set_max_image_pixels

_PR_SET_PDEATHSIG = 1


def _poll_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(1)


def die_with_parent(parent_pid: int) -> None:
    """Make this (worker) process exit as soon as ``parent_pid``, its parent, is gone.

    Args:
        parent_pid: The pid of the process that started this one (``os.getpid()`` taken in the
            parent before starting it): if the parent is already gone, this exits at once.
    """
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:
        threading.Thread(target=_poll_parent, args=(parent_pid,), daemon=True).start()


class WorkerInit:
    """A DataLoader ``worker_init_fn``: the worker dies with the loading process and reads
    images under the same pixel limit.

    Args:
        parent_pid: The loading process (default: the one constructing this object).
        max_pixels: The image pixel limit (default: the current one of this process).
    """

    def __init__(self, *, parent_pid: int | None = None, max_pixels: int | None = None) -> None:
        self.parent_pid = os.getpid() if parent_pid is None else int(parent_pid)
        self.max_pixels = max_image_pixels() if max_pixels is None else int(max_pixels)

    def __call__(self, worker_id: int) -> None:
        die_with_parent(self.parent_pid)
        set_max_image_pixels(self.max_pixels)
