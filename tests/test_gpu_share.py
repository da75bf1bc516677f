"""A trial's share of a GPU: parsed from its environment, its CUDA memory capped, an overrun one line.

No GPU here: the CUDA calls go through `CudaMemory`, and these tests hand the code a stand-in
that records the cap it was given and answers for a card of a given size. PyTorch's own
`torch.OutOfMemoryError` is raised as the allocator raises it, so the real error type is matched.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from helpers import inspect_summary, wandb_run_dir

from agent.records import GPU_TOTAL_KEY
from agent.trial.config import ConfigError
from agent.trial.gpu_share import (
    GIB,
    CudaMemory,
    GpuShare,
    GpuShareExceeded,
    cap_memory,
    parse_share,
    record_usable_memory,
    requested_bytes,
    usable_gb,
    within_share,
)

# As PyTorch's caching allocator words it when a capped process runs out.
OOM = (
    "CUDA out of memory. Tried to allocate 6.00 GiB. GPU 0 has a total capacity of 80.00 GiB of which 50.00 GiB is "
    "free. 20.00 GiB allowed; Of the allocated memory 18.00 GiB is allocated by PyTorch"
)


class StandInCuda(CudaMemory):
    """A card of `total_gib` whose process has allocated `peak_gib` at most; records every cap."""

    def __init__(self, total_gib: float = 80.0, peak_gib: float = 18.0, cuda: bool = True):
        self.total_gib, self.peak_gib, self.cuda = total_gib, peak_gib, cuda
        self.caps: list[float] = []

    def available(self) -> bool:
        return self.cuda

    def cap(self, fraction: float) -> None:
        self.caps.append(fraction)

    def total_bytes(self) -> int:
        return int(self.total_gib * GIB)

    def peak_bytes(self) -> int:
        return int(self.peak_gib * GIB)


@pytest.mark.parametrize("text, share", [(None, None), ("", None), ("1/1", None), ("1/4", "1/4"), ("0.5", "1/2")])
def test_the_share_is_read_as_the_supervisor_writes_it(text, share):
    parsed = parse_share(text)
    assert (str(parsed) if parsed else None) == share


@pytest.mark.parametrize("text", ["0", "2", "1/0", "half", "-1/2"])
def test_a_share_that_is_no_fraction_of_a_gpu_is_one_line(text):
    with pytest.raises(ConfigError, match=r"LORA_SWEEP_GPU_SHARE=.*: give the GPU share as 1/N, such as 1/4$"):
        parse_share(text)


def test_a_share_caps_cuda_memory_at_that_fraction_and_nothing_else_does():
    cuda = StandInCuda()
    cap_memory(GpuShare(Fraction(1, 4)), cuda)
    cap_memory(None, cuda)  # the whole GPU: no cap
    cap_memory(GpuShare(Fraction(1, 2)), StandInCuda(cuda=False))  # no CUDA: nothing to cap
    assert cuda.caps == [0.25]


@pytest.mark.parametrize("share, gib", [(None, 80.0), ("1/4", 20.0), ("1/3", 80 / 3)])
def test_the_memory_a_run_could_use_is_the_card_or_its_shares_cap(share, gib):
    assert usable_gb(80 * GIB, parse_share(share)) == pytest.approx(gib)


class Run:
    def __init__(self):
        self.summary: dict = {}


def test_the_usable_memory_is_in_the_summary_on_a_gpu_and_absent_on_cpu():
    on_gpu, on_cpu = Run(), Run()
    record_usable_memory(on_gpu, parse_share("1/2"), StandInCuda(total_gib=80.0))
    record_usable_memory(on_cpu, None, StandInCuda(cuda=False))
    assert on_gpu.summary == {GPU_TOTAL_KEY: 40.0}
    assert on_cpu.summary == {}  # absent, never 0


def test_an_overrun_of_the_share_is_one_line_with_the_share_the_peak_and_the_n_that_fits():
    with pytest.raises(GpuShareExceeded) as failed:
        with within_share(GpuShare(Fraction(1, 4)), StandInCuda(total_gib=80, peak_gib=18)):
            raise torch.OutOfMemoryError(OOM)

    line = str(failed.value)
    assert "\n" not in line
    assert line.startswith("out of GPU memory within this trial's share 1/4 of 80.0 GiB (20.0 GiB)")
    assert "it needed at least 24.0 GiB" in line  # its peak so far and the allocation that failed
    assert "lower --agents-per-gpu to 3" in line  # 80 // 24
    assert isinstance(failed.value, ConfigError)  # the program prints it as one `error:` line, a failed launch


def test_other_errors_and_unshared_ooms_pass_through_unchanged():
    with pytest.raises(ValueError):
        with within_share(GpuShare(Fraction(1, 2)), StandInCuda()):
            raise ValueError("not memory")
    with pytest.raises(torch.OutOfMemoryError):
        with within_share(None, StandInCuda()):
            raise torch.OutOfMemoryError(OOM)


def test_the_failed_allocation_is_read_from_pytorchs_message():
    assert requested_bytes(OOM) == 6 * GIB
    assert requested_bytes("Tried to allocate 512.00 MiB.") == 512 * 2**20
    assert requested_bytes("something else") == 0


@pytest.fixture
def restored_environment():
    """The program in-process sets WANDB_PROJECT and WANDB_SERVICE in os.environ and starts W&B's
    service: later tests' children would join this process's wandb-core. Undo both."""
    import os

    environ = dict(os.environ)
    yield
    import wandb

    wandb.teardown()
    os.environ.clear()
    os.environ.update(environ)


def test_the_trial_program_caps_its_share_and_an_overrun_is_one_line_and_a_failed_launch(
    tmp_path, monkeypatch, capsys, restored_environment
):
    """The real program, W&B offline, under LORA_SWEEP_GPU_SHARE=1/4. Two stand-ins, both for CUDA: the
    memory seam, and fine-tuning raising the allocator's own error as a capped GPU would."""
    import signal

    from agent.trial import program, recipe
    from agent.trial.checkpoint import read_launches

    cuda = StandInCuda(total_gib=80, peak_gib=18)
    monkeypatch.setattr(program, "CudaMemory", lambda: cuda)

    def out_of_memory(*_):
        raise torch.OutOfMemoryError(OOM)

    monkeypatch.setattr(recipe, "fine_tune", out_of_memory)
    monkeypatch.setenv("LORA_SWEEP_GPU_SHARE", "1/4")
    monkeypatch.chdir(tmp_path)

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert program.main(["--max_attempts=3"]) == 1
    finally:  # the program installs its own handlers: give pytest back its own
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert cuda.caps == [0.25]
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and err[0].startswith("error: out of GPU memory within this trial's share 1/4"), err
    (launches_file,) = (tmp_path / "outputs").glob("*/checkpoints/launches.json")
    (launch,) = read_launches(launches_file.parent)
    assert launch["outcome"] == "failed" and launch["reason"].startswith("GpuShareExceeded: out of GPU memory")
    assert inspect_summary(wandb_run_dir(tmp_path))["summary"]["gpu/share"] == 0.25  # the review's GPU-hours read it
