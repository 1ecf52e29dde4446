"""Run logging: ``metrics.jsonl`` (one JSON object per line), TensorBoard scalars, resolved config.

A run directory holds::

    run_dir/metrics.jsonl   {"step": 20, "loss": 1.23, "lr": 0.0001, ...} per line, flushed
    run_dir/tb/             TensorBoard event files (``tensorboard --logdir run_dir/tb``)
    run_dir/config.yaml     the resolved config, written atomically

Only rank 0 writes: other ranks build a disabled :class:`RunLogger`, which does nothing.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import numbers
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import torch
import yaml

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tb"
CONFIG_FILE = "config.yaml"


def _scalar(name: str, value: Any) -> float | int:
    """A Python number from a number, numpy scalar or one-element tensor."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"Metric '{name}' is a tensor of shape {tuple(value.shape)}; log one number "
                "(e.g. reduce it with .mean())."
            )
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if hasattr(value, "item"):  # numpy scalar
            return _scalar(name, value.item())
        raise ValueError(f"Metric '{name}' must be a number, got {type(value).__name__}.")
    return int(value) if isinstance(value, numbers.Integral) else float(value)


class RunLogger:
    """Appends scalars to ``run_dir/metrics.jsonl`` and TensorBoard (rank 0 only).

    Args:
        run_dir: The run directory (created when enabled).
        enabled: False on non-main ranks: nothing is created or written.
        tensorboard: Also write TensorBoard event files to ``run_dir/tb/``.
        resume_step: When continuing a run from a checkpoint saved after this many steps, records
            with a larger step (logged by the interrupted run after its last checkpoint) are
            dropped from ``metrics.jsonl`` and TensorBoard, so the logs have no duplicates.
            None: append to whatever is there.

    Example::

        logger = RunLogger(run_dir, enabled=ctx.is_main)
        logger.log(step, loss=1.25, lr=3e-4)
        logger.close()
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        enabled: bool = True,
        tensorboard: bool = True,
        resume_step: int | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._file: TextIO | None = None
        self._writer: Any = None  # torch.utils.tensorboard.SummaryWriter, imported when used
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / METRICS_FILE
        if resume_step is not None and path.exists():
            kept = [r for r in read_metrics(self.run_dir) if r.get("step", 0) <= resume_step]
            text = "".join(json.dumps(r) + "\n" for r in kept)
            _atomic_write(path, text)
        needs_newline = path.exists() and path.stat().st_size > 0 and not _ends_with_newline(path)
        self._file = open(path, "a", encoding="utf-8")  # closed in close()
        if needs_newline:  # a crash cut the last line short: start on a fresh line
            self._file.write("\n")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = None if resume_step is None else resume_step + 1
            self._writer = SummaryWriter(
                log_dir=str(self.run_dir / TENSORBOARD_DIR), purge_step=purge
            )

    def log(self, step: int, **scalars: Any) -> None:
        """Record ``scalars`` (numbers, numpy scalars or one-element tensors) at ``step``.

        Names with ``/`` group plots in TensorBoard (``loss/ade``). The line is flushed at once.

        Raises:
            ValueError: a value that is not a single number.
        """
        if not self.enabled:
            return
        values = {name: _scalar(name, v) for name, v in scalars.items()}
        if self._file is None:
            raise RuntimeError(f"RunLogger for {self.run_dir} is closed; create a new one.")
        self._file.write(json.dumps({"step": int(step), **values}) + "\n")
        self._file.flush()
        if self._writer is not None:
            for name, v in values.items():
                self._writer.add_scalar(name, v, global_step=int(step))

    def close(self) -> None:
        """Flush and close the files (safe to call twice)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """All records of ``run_dir/metrics.jsonl``, in order (empty when the file does not exist).

    A line that is not valid JSON (e.g. cut short by a crash) is skipped with a warning.
    """
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    records: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            warnings.warn(f"{path}:{number} is not valid JSON; skipped.", stacklevel=2)
    return records


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path``, fsync, and rename it over ``path``."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _plain(value: Any, where: str) -> Any:
    """YAML-safe copy: dataclasses and OmegaConf to dicts, tuples to lists, paths to str."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    elif type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, enum.Enum):
        return _plain(value.value, where)
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    raise ValueError(
        f"Config value '{where}' has type {type(value).__name__}, which cannot be written to "
        f"{CONFIG_FILE}; use numbers, strings, lists and dicts."
    )


def save_resolved_config(run_dir: Path, config: Any) -> Path:
    """Write the resolved config to ``run_dir/config.yaml`` atomically (keys in given order).

    Args:
        run_dir: The run directory (created if needed).
        config: A mapping (or a dataclass / OmegaConf config) of plain values.

    Returns:
        The path of ``config.yaml``.

    Raises:
        ValueError: a value YAML cannot hold.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / CONFIG_FILE
    text = yaml.safe_dump(_plain(config, ""), sort_keys=False, allow_unicode=True)
    _atomic_write(path, text)
    return path
