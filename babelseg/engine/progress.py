"""Progress of long loops: a tqdm bar on a terminal, plain lines in batch jobs.

When stderr is a terminal the bar redraws in place; when it is a file or a pipe (a cluster job,
``nohup``, CI, ``2>log``) a bar prints nothing useful, so a plain line goes out every ``every``
steps instead, e.g.::

    train step 400/2400 (16.7%) | loss 1.2345 | lr 2.00e-03 | 41.3 images/s | elapsed 2m10s
      | ETA 10m50s      (one line)
    train: checkpoint at step 400: runs/default/ckpt_0000400

Styles: ``bar``, ``lines`` or ``off``; :func:`progress_style` picks one from a ``show_progress``
flag (None = bar on a terminal, lines otherwise; True = bar; False = nothing).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO, TypeVar

from tqdm import tqdm

STYLES = ("bar", "lines", "off")
T = TypeVar("T")


def progress_style(show_progress: bool | None, stream: TextIO | None = None) -> str:
    """``bar`` / ``lines`` / ``off`` for a ``show_progress`` flag (see the module docstring)."""
    if show_progress is False:
        return "off"
    if show_progress is True:
        return "bar"
    stream = stream or sys.stderr
    is_terminal = getattr(stream, "isatty", lambda: False)()
    return "bar" if is_terminal else "lines"


def format_duration(seconds: float) -> str:
    """``75 -> "1m15s"``, ``3725 -> "1h02m05s"``, ``9.4 -> "9s"``."""
    total = int(round(max(seconds, 0.0)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _format_value(name: str, value: Any) -> str:
    if name == "lr":
        return f"lr {value:.2e}"
    if name == "images_per_s":
        return f"{value:.1f} images/s"
    if isinstance(value, float):
        return f"{name} {value:.4f}"
    return f"{name} {value}"


class Progress:
    """A progress display for a loop of ``total`` steps.

    Args:
        total: Steps in the whole loop.
        desc: What runs (``train``, ``eval metro_drive``, ``predict``).
        every: Lines style: print a line every this many steps (and at the last step).
        initial: Steps already done (a resumed run); ETA counts only steps done here.
        unit: Name of a step in the lines (``step``, ``image``).
        style: ``bar``, ``lines`` or ``off`` (see :func:`progress_style`).
        stream: Where to write (default stderr).
        clock: Seconds since some fixed point (tests pass a fake one).
        leave: Bar style: keep the finished bar on screen.
    """

    def __init__(
        self,
        *,
        total: int,
        desc: str,
        every: int,
        initial: int = 0,
        unit: str = "step",
        style: str = "lines",
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        leave: bool = True,
    ) -> None:
        if style not in STYLES:
            raise ValueError(f"Unknown progress style '{style}'; valid: {list(STYLES)}.")
        if every < 1:
            raise ValueError(f"Progress lines every {every} steps: give at least 1.")
        self.total, self.desc, self.every, self.unit = total, desc, every, unit
        self.style = style
        self.stream = stream or sys.stderr
        self.clock = clock
        self.initial = self.done = initial
        self.started = clock()
        self.values: dict[str, Any] = {}
        self._bar = None
        if style == "bar":
            self._bar = tqdm(
                total=total,
                initial=initial,
                desc=desc,
                dynamic_ncols=True,
                file=self.stream,
                leave=leave,
            )

    def set_values(self, **values: Any) -> None:
        """Numbers to show from now on (``loss``, ``lr``, ``images_per_s``, anything else)."""
        self.values.update(values)
        if self._bar is not None:
            self._bar.set_postfix(
                {k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in values.items()}
            )

    def update(self, n: int = 1) -> None:
        """``n`` more steps done; in lines style, print a line when one is due."""
        before = self.done
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.style == "lines":
            due = self.done // self.every > before // self.every or self.done >= self.total
            if due:
                self._print(self.line())

    def line(self) -> str:
        """The progress line for the current state."""
        pct = 100.0 * self.done / max(self.total, 1)
        parts = [f"{self.desc} {self.unit} {self.done}/{self.total} ({pct:.1f}%)"]
        parts += [_format_value(k, v) for k, v in self.values.items()]
        elapsed = self.clock() - self.started
        parts.append(f"elapsed {format_duration(elapsed)}")
        here = self.done - self.initial
        if self.done < self.total and here > 0:
            parts.append(f"ETA {format_duration(elapsed / here * (self.total - self.done))}")
        return " | ".join(parts)

    def track(self, items: Iterable[T]) -> Iterator[T]:
        """Yield ``items``, counting one step after each; close at the end."""
        try:
            for item in items:
                yield item
                self.update(1)
        finally:
            self.close()

    def note(self, message: str) -> None:
        """A one-off line (a checkpoint written, a dataset scored), in bar and lines style."""
        if self._bar is not None:
            self._bar.write(f"{self.desc}: {message}", file=self.stream)
        elif self.style == "lines":
            self._print(f"{self.desc}: {message}")

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        """Close the bar (safe to call twice)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def per_item_progress(*, total: int, desc: str, every: int = 25) -> Progress:
    """Progress for commands that print one line per item on stdout (``predict``): nothing more
    on a terminal, a line every ``every`` items when stderr is a file or pipe."""
    style = "off" if progress_style(None) == "bar" else "lines"
    return Progress(total=total, desc=desc, every=every, unit="image", style=style)
