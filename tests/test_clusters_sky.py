"""`lora-sweep sky task`, run as the real CLI, and its file read by SkyPilot's own parser.

The package index and git hosts are the boundary, as for `pods up`: the strict stand-ins `pip` and
`git` in tests/fleet_bin come first on PATH. SkyPilot 0.14.1 pins click below 8.2 (and bcrypt,
uvicorn), so it never enters this environment: the last test builds a virtual environment of its
own, once, under ~/.cache/lora-sweep-test, and runs `sky.Task.from_yaml` in that environment's Python.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import FLEET_BIN
from helpers import SECRET_WANDB_KEY as WANDB_KEY
from helpers import STANDIN_INDEX as INDEX
from helpers import run_with_standins as lora_sweep

SWEEP = "me/lora/8f3k2x1q"
SKYPILOT = "skypilot==0.14.1"
SKYPILOT_VENV = Path.home() / ".cache" / "lora-sweep-test" / "skypilot-0.14.1"


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


TASK = ("sky", "task", SWEEP, "--package", "lora-sweep==0.1.0")
WRITTEN = Path(".lora-sweep/sky/me-lora-8f3k2x1q.yaml")


def test_every_node_installs_the_package_and_runs_one_agent_per_gpu():
    done = lora_sweep(*TASK, "--gpus", "A100:2", "--count", "3")

    assert done.exit_code == 0, done.output
    assert done.stdout == f"wrote {WRITTEN}\n"
    assert "package: lora-sweep==0.1.0 is on the package index" in done.stderr
    text = WRITTEN.read_text()
    assert WANDB_KEY not in text
    assert f"sky jobs launch {WRITTEN} --secret WANDB_API_KEY\n" in text
    task = yaml.safe_load(text)
    assert task["num_nodes"] == 3
    assert task["resources"] == {
        "accelerators": "A100:2",
        "use_spot": False,
        "job_recovery": {"strategy": "EAGER_NEXT_REGION", "max_restarts_on_errors": 3, "recover_on_exit_codes": [143]},
    }
    assert task["envs"] == {
        "LORA_SWEEP_ID": SWEEP,
        "LORA_SWEEP_PACKAGE": "lora-sweep==0.1.0",
        "LORA_SWEEP_TORCH_INDEX": "https://download.pytorch.org/whl/cu128",
    }
    assert task["secrets"] == {"WANDB_API_KEY": None}
    assert task["run"] == 'exec lora-sweep agent "$LORA_SWEEP_ID" --gpus all\n'


def test_the_setup_installs_what_the_stand_in_pip_installs(tmp_path):
    """The setup script run as a node runs it, with its envs, against the strict stand-in pip."""
    assert lora_sweep(*TASK, "--gpus", "A100:1").exit_code == 0
    task = yaml.safe_load(WRITTEN.read_text())
    record = tmp_path / "record.jsonl"
    env = {**os.environ, **task["envs"], "PATH": f"{FLEET_BIN}{os.pathsep}{os.environ['PATH']}"}
    env |= {"STANDIN_PIP_INDEX": json.dumps(INDEX), "STANDIN_RECORD": str(record)}

    subprocess.run(["bash", "-c", task["setup"]], env=env, check=True)

    installs = [json.loads(line)["argv"] for line in record.read_text().splitlines()]
    assert installs == [
        ["install", "--quiet", "torch", "--index-url", "https://download.pytorch.org/whl/cu128"],
        ["install", "--quiet", "lora-sweep==0.1.0"],
    ]


def test_spot_several_gpu_types_and_more_secrets():
    done = lora_sweep(
        *TASK, "--gpus", "A100:1", "--gpus", "H100:1", "--spot", "--secret", "HF_TOKEN", "--out", "t.yaml"
    )

    assert done.exit_code == 0, done.output
    task = yaml.safe_load(Path("t.yaml").read_text())
    assert task["resources"]["any_of"] == [{"accelerators": "A100:1"}, {"accelerators": "H100:1"}]
    assert "accelerators" not in task["resources"] and task["resources"]["use_spot"] is True
    assert task["secrets"] == {"WANDB_API_KEY": None, "HF_TOKEN": None}
    assert "--secret WANDB_API_KEY --secret HF_TOKEN" in Path("t.yaml").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (("--gpus", "A100"), "Error: --gpus 'A100': give TYPE:N, such as A100:1 or H100:8\n"),
        (("--gpus", "A100:0"), "Error: --gpus 'A100:0': give TYPE:N, such as A100:1 or H100:8\n"),
        (
            ("--gpus", "A100:1", "--secret", "HF TOKEN"),
            "Error: --secret 'HF TOKEN': give the name of an environment variable, such as HF_TOKEN\n",
        ),
    ],
)
def test_a_bad_gpu_spec_or_secret_name_is_one_line_and_writes_nothing(args, message):
    done = lora_sweep(*TASK, *args)

    assert (done.exit_code, done.stderr) == (1, message)
    assert not WRITTEN.exists()


def test_a_count_below_one_is_refused():
    done = lora_sweep(*TASK, "--gpus", "A100:1", "--count", "0")

    assert done.exit_code == 2 and "Invalid value for '--count': 0 is not in the range x>=1" in done.stderr


def test_a_local_sweep_is_refused_in_one_line_pointing_to_wandb():
    done = lora_sweep("sky", "task", "3k9x2abc", "--gpus", "A100:1", "--count", "2")

    assert done.exit_code == 1
    assert done.stderr.count("\n") == 1 and "work a W&B sweep" in done.stderr and "wandb sweep FILE" in done.stderr
    assert not WRITTEN.exists()


def test_a_package_pip_cannot_find_writes_nothing_and_an_unreachable_index_is_noted():
    missing = lora_sweep("sky", "task", SWEEP, "--gpus", "A100:1", "--package", "lora-sweep==9.9.9")
    assert missing.exit_code == 1 and "lora-sweep==9.9.9 is not on the package index" in missing.stderr
    assert not WRITTEN.exists()

    offline = lora_sweep(*TASK, "--gpus", "A100:1", STANDIN_PIP_OFFLINE="1")
    assert offline.exit_code == 0, offline.output
    assert "package: cannot reach the package index to check lora-sweep==0.1.0" in offline.stderr
    assert WRITTEN.exists()


# SkyPilot's own parser, in a virtual environment of its own -----------------------------------

PARSE = """
import json, sys
import sky
from sky.utils import registry
import sky.jobs.recovery_strategy  # registers the recovery strategies

task = sky.Task.from_yaml(sys.argv[1])
resources = [
    {"accelerators": r.accelerators, "use_spot": r.use_spot, "job_recovery": r.job_recovery}
    for r in task.resources
]
print(json.dumps({
    "num_nodes": task.num_nodes,
    "resources": sorted(resources, key=str),
    "envs": task.envs,
    "managed_secrets": [ref.name for ref in task.managed_secret_refs],
    "setup": task.setup,
    "run": task.run,
    "strategies": list(registry.JOBS_RECOVERY_STRATEGY_REGISTRY.keys()),
}))
"""


def skypilot_python() -> Path:
    """The Python of a virtual environment holding only SkyPilot, built once and reused; the test is
    skipped, with pip's last line, where it cannot be built (no index)."""
    python = SKYPILOT_VENV / "bin" / "python"
    SKYPILOT_VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(SKYPILOT_VENV.parent / "skypilot.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test workers build it once
        if (SKYPILOT_VENV / ".installed").exists():
            return python
        shutil.rmtree(SKYPILOT_VENV, ignore_errors=True)
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "venv", str(SKYPILOT_VENV)], check=True)
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", SKYPILOT],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            shutil.rmtree(SKYPILOT_VENV, ignore_errors=True)
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            pytest.skip(f"cannot install {SKYPILOT}: {lines[-1] if lines else 'no output'}")
        (SKYPILOT_VENV / ".installed").write_text(f"{time.monotonic() - started:.0f} s\n")
        print(f"built {SKYPILOT_VENV} in {time.monotonic() - started:.0f} s")
    return python


@pytest.mark.e2e
def test_skypilot_parses_the_task_as_it_was_written(tmp_path):
    done = lora_sweep(*TASK, "--gpus", "A100:1", "--gpus", "H100:8", "--count", "2", "--spot", "--secret", "HF_TOKEN")
    assert done.exit_code == 0, done.output
    (tmp_path / "parse.py").write_text(PARSE)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}

    python = skypilot_python()
    parsed = subprocess.run([str(python), "parse.py", str(WRITTEN)], capture_output=True, text=True, env=env)

    assert parsed.returncode == 0, parsed.stderr
    task = json.loads(parsed.stdout)
    recovery = {"strategy": "EAGER_NEXT_REGION", "max_restarts_on_errors": 3, "recover_on_exit_codes": [143]}
    assert task["num_nodes"] == 2
    assert task["resources"] == [
        {"accelerators": {"A100": 1}, "use_spot": True, "job_recovery": recovery},
        {"accelerators": {"H100": 8}, "use_spot": True, "job_recovery": recovery},
    ]
    assert recovery["strategy"].lower() in task["strategies"]
    assert task["envs"]["LORA_SWEEP_ID"] == SWEEP and task["envs"]["LORA_SWEEP_PACKAGE"] == "lora-sweep==0.1.0"
    assert task["managed_secrets"] == ["WANDB_API_KEY", "HF_TOKEN"]  # taken at launch, by name
    assert task["run"] == 'exec lora-sweep agent "$LORA_SWEEP_ID" --gpus all\n'
    assert 'pip install --quiet "$LORA_SWEEP_PACKAGE"' in task["setup"]
