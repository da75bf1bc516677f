"""Which GPUs `--gpus` means. `nvidia-smi` is stood in for by small scripts (the driver is the boundary)."""

from __future__ import annotations

import pytest

from agent.fleet.gpus import GpuError, parse_gpus


def fake_nvidia_smi(tmp_path, body: str) -> str:
    path = tmp_path / "nvidia-smi"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_explicit_ids_are_taken_as_given_without_asking_the_machine():
    assert parse_gpus("0, 1,3", cuda_visible_devices=None, nvidia_smi=None) == ("0", "1", "3")


def test_all_asks_nvidia_smi_for_its_gpu_indices(tmp_path):
    nvidia_smi = fake_nvidia_smi(tmp_path, f'echo "$@" > {tmp_path}/args; printf "0\\n1\\n"')

    assert parse_gpus("all", None, nvidia_smi) == ("0", "1")
    assert (tmp_path / "args").read_text().split() == ["--query-gpu=index", "--format=csv,noheader"]


def test_all_prefers_cuda_visible_devices_as_cuda_does(tmp_path):
    nvidia_smi = fake_nvidia_smi(tmp_path, "exit 1")  # never asked
    assert parse_gpus("all", "2,GPU-77aa", nvidia_smi) == ("2", "GPU-77aa")


@pytest.mark.parametrize("hidden", ["", "-1"])
def test_a_cuda_visible_devices_that_hides_every_gpu_is_an_error(hidden):
    with pytest.raises(GpuError, match="hides every GPU"):
        parse_gpus("all", hidden, None)


def test_a_failing_nvidia_smi_is_one_line_with_its_reason(tmp_path):
    nvidia_smi = fake_nvidia_smi(tmp_path, 'echo "NVIDIA-SMI has failed because it could not communicate" >&2; exit 9')
    with pytest.raises(GpuError) as error:
        parse_gpus("all", None, nvidia_smi)
    assert str(error.value) == (
        "--gpus all: nvidia-smi failed (NVIDIA-SMI has failed because it could not communicate); "
        "pass ids such as --gpus 0,1"
    )


def test_no_nvidia_smi_and_no_gpus_listed_are_errors(tmp_path):
    with pytest.raises(GpuError, match="no GPU visible"):
        parse_gpus("all", None, None)
    with pytest.raises(GpuError, match="lists no GPU"):
        parse_gpus("all", None, fake_nvidia_smi(tmp_path, "true"))
