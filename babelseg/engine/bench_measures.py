"""Device measures for ``babelseg bench``: the matmul peak of this device, the model FLOPs of a
step (``torch.utils.flop_counter.FlopCounterMode``) and the host crossings of a step
(``torch.profiler``): scalar reads, copies and their non-blocking flag, and on CUDA the
host-to-device memcpys and stream synchronisations."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU, whose ops run eagerly)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_ms(fn: Callable[[], object], device: torch.device) -> float:
    """Milliseconds of ``fn()``, the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return (time.perf_counter() - start) * 1000


@dataclass(frozen=True)
class MatmulPeak:
    """The best matmul throughput measured on a device.

    Attributes:
        flops_per_s: Median FLOP/s of ``repeats`` timed ``size x size @ size x size`` products.
        dtype: The operand type (``bfloat16`` under autocast on CUDA, else ``float32``).
        size: The matrix side.
    """

    flops_per_s: float
    dtype: str
    size: int


def matmul_peak(
    *, device: torch.device, dtype: torch.dtype, size: int, repeats: int = 10
) -> MatmulPeak:
    """Measure this device's dense matmul FLOP/s: a timed loop of square products.

    Each repeat runs ``inner`` products back to back (enough to keep a GPU busy) and is
    synchronised once; the median repeat counts (2 * size^3 FLOPs per product).
    """
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    inner = 20 if device.type == "cuda" else 2
    for _ in range(2):  # warm-up: kernels chosen, clocks up
        a @ b
    rates = []
    for _ in range(repeats):
        ms = timed_ms(lambda: [a @ b for _ in range(inner)], device)
        rates.append(2 * size**3 * inner / (ms / 1000))
    return MatmulPeak(
        flops_per_s=statistics.median(rates), dtype=str(dtype).split(".")[-1], size=size
    )


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the matmuls, convolutions and attention ``fn()`` runs (forward and backward),
    as ``FlopCounterMode`` counts them (element-wise ops are not counted)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


COPY_OPS = ("aten::copy_",)
SCALAR_READ_OPS = ("aten::_local_scalar_dense",)
CUDA_SYNC_OPS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")


@dataclass(frozen=True)
class Crossings:
    """What one step makes the host wait for or copy, from a profiler trace.

    Attributes:
        scalar_reads: ``aten::_local_scalar_dense`` calls (``.item()``, ``float(t)``,
            ``bool(t)``): each waits for the device on a GPU.
        copies: ``aten::copy_`` calls (on the CPU an upper bound of what becomes a host-to-device
            copy on a GPU: dtype conversions count too).
        non_blocking_copies: Those of ``copies`` made with ``non_blocking=True``.
        host_to_device: CUDA host-to-device memcpys (``Memcpy HtoD`` on the device; 0 on CPU).
        synchronizations: CUDA stream/device/event synchronisations (0 on the CPU).
    """

    scalar_reads: int
    copies: int
    non_blocking_copies: int
    host_to_device: int
    synchronizations: int


def _is_non_blocking(event) -> bool:
    inputs = getattr(event, "concrete_inputs", None) or []
    return len(inputs) > 2 and inputs[2] is True


def count_crossings(fn: Callable[[], object], device: torch.device) -> Crossings:
    """Run ``fn()`` once under ``torch.profiler`` and count its host crossings."""
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    synchronize(device)
    with profile(activities=activities, record_shapes=True) as prof:
        fn()
    synchronize(device)  # outside the trace: the bench's own wait is not the step's
    events = list(prof.events())
    copies = [e for e in events if e.name in COPY_OPS]
    return Crossings(
        scalar_reads=sum(e.name in SCALAR_READ_OPS for e in events),
        copies=len(copies),
        non_blocking_copies=sum(_is_non_blocking(e) for e in copies),
        host_to_device=sum("Memcpy HtoD" in e.name for e in events),
        synchronizations=sum(e.name in CUDA_SYNC_OPS for e in events),
    )
