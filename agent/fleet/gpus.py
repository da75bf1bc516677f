"""Which GPUs an agent runs on: explicit ids, or `all` the GPUs this machine shows."""

from __future__ import annotations

import subprocess

from agent.errors import UserError


class GpuError(UserError):
    """The GPU choice cannot be honoured; the message is one line for the user."""


def parse_gpus(spec: str, cuda_visible_devices: str | None, nvidia_smi: str | None) -> tuple[str, ...]:
    """The GPU ids for `--gpus SPEC`: `all`, or a comma list such as `0,1,3`.

    Explicit ids are taken as given, without asking the machine, so they work anywhere (a CPU
    box runs the same supervision in tests). `all` reads CUDA_VISIBLE_DEVICES first, as CUDA
    itself does, then asks `nvidia-smi` (its path, or None when it is not installed).
    """
    if spec.strip() == "all":
        return visible_gpus(cuda_visible_devices, nvidia_smi)
    ids = tuple(part.strip() for part in spec.split(","))
    if not all(ids):
        raise GpuError(f"--gpus {spec!r}: give `all` or comma-separated GPU ids such as 0,1,3")
    duplicates = sorted({gpu for gpu in ids if ids.count(gpu) > 1})
    if duplicates:
        raise GpuError(f"--gpus {spec!r}: GPU {', '.join(duplicates)} is listed twice")
    return ids


def visible_gpus(cuda_visible_devices: str | None, nvidia_smi: str | None) -> tuple[str, ...]:
    # An already narrowed CUDA_VISIBLE_DEVICES (a pod slice, a scheduler's choice) wins, as in CUDA;
    # its entries may be indices or GPU UUIDs, and either works as a child's CUDA_VISIBLE_DEVICES.
    # Set but empty, or starting with a negative id, it hides every GPU from CUDA: honour that too.
    if cuda_visible_devices is not None:
        ids = tuple(part.strip() for part in cuda_visible_devices.split(",") if part.strip())
        if ids and not ids[0].startswith("-"):
            return ids
        raise GpuError(f"--gpus all: CUDA_VISIBLE_DEVICES={cuda_visible_devices!r} hides every GPU; unset it")
    if nvidia_smi is None:
        raise GpuError("--gpus all: no GPU visible (no nvidia-smi on PATH); pass ids such as --gpus 0,1")
    ids = query_nvidia_smi(nvidia_smi)
    if not ids:
        raise GpuError("--gpus all: nvidia-smi lists no GPU; pass ids such as --gpus 0,1")
    return ids


def query_nvidia_smi(nvidia_smi: str) -> tuple[str, ...]:
    try:
        out = subprocess.run(
            [nvidia_smi, "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise GpuError(f"--gpus all: nvidia-smi failed ({error}); pass ids such as --gpus 0,1") from None
    if out.returncode != 0:
        reason = (out.stderr or out.stdout).strip().splitlines()[-1:] or [f"exit {out.returncode}"]
        raise GpuError(f"--gpus all: nvidia-smi failed ({reason[0]}); pass ids such as --gpus 0,1")
    return tuple(line.strip() for line in out.stdout.splitlines() if line.strip())
