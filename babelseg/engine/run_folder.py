"""Whose run folder is it: a fresh run never mixes its files with an earlier run's.

A fresh ``train`` into a folder that already holds a run would overwrite some checkpoints with
another architecture, keep others and the old metrics, and append to ``metrics.jsonl``. So a
fresh run needs an empty (or missing) ``run_dir``; ``--resume`` continues the run that is there,
and ``--overwrite`` clears it first, but only when it is recognisably a babelseg run folder, so
that a mistyped ``run_dir=.`` never wipes a folder the run does not own (a folder holding other
files only is used as it is).
"""

from __future__ import annotations

import shutil
from pathlib import Path

RUN_FILES = ("config.yaml", "metrics.jsonl", "metrics.json", "latest")
"""Files whose presence marks a babelseg run folder (besides ``ckpt_*`` folders)."""


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` holds what ``babelseg train`` writes (a config, metrics, checkpoints)."""
    folder = Path(folder)
    if any((folder / name).exists() for name in RUN_FILES):
        return True
    return any(folder.glob("ckpt_*"))


def prepare_run_folder(run_dir: Path, *, overwrite: bool, clear: bool = True) -> None:
    """Make ``run_dir`` ready for a FRESH run (not ``--resume``).

    Args:
        run_dir: The run's folder (``cfg.run_dir``).
        overwrite: Clear an earlier run found there instead of refusing.
        clear: Actually delete (the writing process); False only checks (other DDP ranks).
    Raises:
        ValueError: ``run_dir`` is a file, or holds an earlier run and ``overwrite`` is False.
            A folder holding other files only is used as it is (never cleared).
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"run_dir {run_dir} is a file; give a folder.")
    if not run_dir.is_dir() or not is_run_folder(run_dir):
        return  # missing, empty, or other files only: no earlier run to mix with, none cleared
    if not overwrite:
        raise ValueError(
            f"run_dir {run_dir} already holds a run. Continue it with `babelseg train --resume "
            f"{run_dir}`, start over with --overwrite (deletes that run), or choose another "
            "run_dir=."
        )
    if clear:
        for entry in run_dir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
