"""A trial's share of a GPU that several agents use at once (`lora-sweep agent --agents-per-gpu N`).

The supervisor gives each agent `LORA_SWEEP_GPU_SHARE=1/N`; the trial program reads it at its entry
point and caps its CUDA memory at that share of the card. A trial that outgrows the share then fails
alone, in one line that names the share, the peak it needed and the N that would fit, instead of
taking memory its neighbours were using and failing them with an OOM too.

Every CUDA call goes through `CudaMemory`, the seam the CPU tests replace with a recording stand-in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from agent.env_vars import SHARE_ENV
from agent.records import GPU_TOTAL_KEY
from agent.trial.config import ConfigError

GIB = 2**30


class GpuShareExceeded(ConfigError):
    """The trial needed more GPU memory than its share: the user's N is too large for this trial."""


@dataclass(frozen=True)
class GpuShare:
    fraction: Fraction

    @property
    def agents(self) -> int:
        """How many agents share the GPU (the N of 1/N)."""
        return round(1 / self.fraction)

    def __str__(self) -> str:
        return f"{self.fraction.numerator}/{self.fraction.denominator}"


def parse_share(text: str | None) -> GpuShare | None:
    """`1/N` (or a fraction such as 0.25) from the environment; None when unset or the whole GPU."""
    if text is None or not text.strip():
        return None
    try:
        fraction = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        fraction = Fraction(0)
    if not 0 < fraction <= 1:
        raise ConfigError(f"{SHARE_ENV}={text!r}: give the GPU share as 1/N, such as 1/4")
    return None if fraction == 1 else GpuShare(fraction)


class CudaMemory:
    """The CUDA calls a share needs; the CPU tests stand in for it."""

    def available(self) -> bool:
        import torch

        return torch.cuda.is_available()

    def cap(self, fraction: float) -> None:
        import torch

        torch.cuda.set_per_process_memory_fraction(fraction)

    def total_bytes(self) -> int:
        import torch

        return torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory

    def peak_bytes(self) -> int:
        import torch

        return torch.cuda.max_memory_allocated()

    def is_out_of_memory(self, error: BaseException) -> bool:
        import torch

        return isinstance(error, torch.OutOfMemoryError)


def cap_memory(share: GpuShare | None, memory: CudaMemory) -> None:
    """Cap this process's CUDA memory at its share; nothing without a share or without CUDA."""
    if share is not None and memory.available():
        memory.cap(float(share.fraction))


def usable_gb(total_bytes: int, share: GpuShare | None) -> float:
    """The CUDA memory a trial may use, in GiB as `gpu/peak_allocated_gb` is written: the card's total, or
    the cap `cap_memory` sets under a share (`set_per_process_memory_fraction` caps at that fraction of it)."""
    return total_bytes * float(share.fraction if share else 1) / GIB


def record_usable_memory(run: Any, share: GpuShare | None, memory: CudaMemory) -> None:
    """`gpu/total_gb` in the run's summary when it runs on a GPU; nothing on CPU (never a 0)."""
    if memory.available():
        run.summary[GPU_TOTAL_KEY] = usable_gb(memory.total_bytes(), share)


@contextmanager
def within_share(share: GpuShare | None, memory: CudaMemory) -> Iterator[None]:
    """Turn an out-of-memory error inside a share into one line saying what to change."""
    try:
        yield
    except BaseException as error:
        if share is None or not memory.is_out_of_memory(error):
            raise
        raise GpuShareExceeded(over_share_line(share, error, memory)) from None


def over_share_line(share: GpuShare, error: BaseException, memory: CudaMemory) -> str:
    """The share, the peak this trial needed (its peak so far plus the allocation that failed), and the N that fits."""
    total = memory.total_bytes()
    needed = memory.peak_bytes() + requested_bytes(str(error))
    fits = max(1, int(total // needed)) if needed else share.agents
    advice = (
        f"lower --agents-per-gpu to {fits}" if fits < share.agents else f"lower --agents-per-gpu below {share.agents}"
    )
    return (
        f"out of GPU memory within this trial's share {share} of {total / GIB:.1f} GiB "
        f"({float(share.fraction) * total / GIB:.1f} GiB): it needed at least {needed / GIB:.1f} GiB; "
        f"{advice}, or make the trial smaller (per_device_train_batch_size, max_source_length)"
    )


_TRIED = re.compile(r"Tried to allocate ([\d.]+) (B|KiB|MiB|GiB|TiB)")
_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def requested_bytes(message: str) -> int:
    """The allocation that failed, as PyTorch's caching allocator words it ("Tried to allocate 2.00 GiB")."""
    match = _TRIED.search(message)
    return int(float(match.group(1)) * _UNITS[match.group(2)]) if match else 0
