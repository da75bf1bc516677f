"""Launch a run's program exactly as `wandb agent` does, so any program that works there works here.

What `wandb agent` does (wandb 0.31, `wandb/wandb_agent.py`, `Agent._command_run`):
- expands `${envvar:NAME}` with `sweep_utils.create_sweep_command`;
- builds every `${args...}` form with `sweep_utils.create_sweep_command_args`;
- writes the parameters to `<WANDB_DIR>/wandb/sweep-<sweep>/config-<run>.yaml` (W&B's config-file
  format, `{name: {value: v}}`) and points `WANDB_SWEEP_PARAM_PATH` at it: `wandb.init()` reads that
  file and locks those keys, so the program cannot silently overwrite a swept value;
- writes `${args_json_file}` beside it as `config-<run>.json`;
- sets `${interpreter}` to the literal `python` and `${env}` to `/usr/bin/env`;
- starts the program in its own process group with stdin closed.
Two things differ on purpose. The agent's own interpreter folder goes first on the program's PATH,
so `python` there is the python that runs lora-sweep (a venv works without activating it). And
`WANDB_SWEEP_ID` is not set: a local sweep id means nothing to a W&B server, and `wandb sync`
would send it as the run's sweep, which the server refuses. `WANDB_SWEEP_PARAM_PATH` alone still
makes `wandb.init()` read and lock the parameters; the runs are grouped by the sweep instead.
We call W&B's helpers for the expansion; the loop that splices the macros into the command is a
few lines inside `_command_run` that W&B does not expose, so it is repeated here.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wandb.sdk.launch.sweeps import utils as sweep_utils
from wandb.sdk.lib import config_util

from agent.env_vars import CLAIM_ENV
from agent.local.processes import claim_mark, start_child

FLUSH_INTERVAL_ENV = "WANDB__TRANSACTION_LOG_FLUSH_INTERVAL"  # setting x_transaction_log_flush_interval


@dataclass(frozen=True)
class Launch:
    """What to start for one run: the command line, its environment, and where W&B will write."""

    argv: list[str]
    env: dict[str, str]
    wandb_dir: Path
    """The folder holding `wandb/offline-run-*-<run_id>/`, as the program's wandb.init() sees it."""
    earlier_run_dirs: frozenset[Path] = frozenset()
    """The run id's folders there before this launch: earlier launches', never this one's."""


def prepare_launch(
    sweep_config: dict[str, Any],
    sweep_id: str,
    run_id: str,
    params: dict[str, Any],
    project: str | None = None,
    *,
    base_env: Mapping[str, str],
    claim: int = 1,
) -> Launch:
    """What to start to launch a run for its `claim`-th claim, with its parameter file written;
    `base_env` is the agent's environment."""
    env = launch_env(base_env, sweep_id, run_id, project, claim)
    command_args = {name: {"value": value} for name, value in params.items()}
    config_util.save_config_file_from_dict(env["WANDB_SWEEP_PARAM_PATH"], command_args)
    json_path = Path(env["WANDB_SWEEP_PARAM_PATH"]).with_suffix(".json")
    wandb_dir = Path(env["WANDB_DIR"]) / "wandb"
    return Launch(
        argv=command_line(sweep_config, command_args, json_path),
        env=env,
        wandb_dir=wandb_dir,
        earlier_run_dirs=run_dirs(wandb_dir, run_id),
    )


def launch_env(
    base_env: Mapping[str, str], sweep_id: str, run_id: str, project: str | None, claim: int
) -> dict[str, str]:
    """The program's environment: what `wandb agent` sets, the claim's mark, and the local
    controller's defaults, over the agent's own environment."""
    env = dict(base_env)
    # `${interpreter}` is the literal `python`: make it ours, as an activated venv would.
    env["PATH"] = os.pathsep.join(filter(None, [os.path.dirname(sys.executable), env.get("PATH")]))
    # `wandb agent` runs programs where the agent runs; W&B writes under WANDB_DIR (or the cwd).
    env.setdefault("WANDB_DIR", os.path.abspath(os.getcwd()))
    env.pop("WANDB_SWEEP_ID", None)  # see the module docstring: the run must sync as a plain run
    env["WANDB_RUN_ID"] = run_id
    env[CLAIM_ENV] = claim_mark(run_id, claim)  # found and ended with the claim, wherever it runs
    env["WANDB_SWEEP_PARAM_PATH"] = str(
        Path(env["WANDB_DIR"]) / "wandb" / f"sweep-{sweep_id}" / f"config-{run_id}.yaml"
    )
    # Offline unless the user chose a mode: the local controller must work with no server.
    env.setdefault("WANDB_MODE", "offline")
    # One group per sweep, so runs synced later sit together in W&B's panels.
    env.setdefault("WANDB_RUN_GROUP", sweep_id)
    if project:
        env.setdefault("WANDB_PROJECT", project)
    # W&B flushes a run's `.wandb` log every 15 s by default; `wandb leet inspect --follow` (our
    # only view of a live run) sees nothing in between. One second keeps hyperband prompt.
    env.setdefault(FLUSH_INTERVAL_ENV, "1")
    env.pop("WANDB_SERVICE", None)  # never share the agent's wandb service with a child
    return env


def command_line(sweep_config: dict[str, Any], command_args: dict[str, dict[str, Any]], json_path: Path) -> list[str]:
    """The sweep's `command` with every macro expanded as `wandb agent` expands it; a command that
    names `${args_json_file}` gets that file written at `json_path`."""
    sweep_vars: dict[str, Any] = sweep_utils.create_sweep_command_args({"args": command_args})
    sweep_command = sweep_utils.create_sweep_command(list(sweep_config.get("command") or []))
    if "${args_json_file}" in sweep_command:
        json_path.write_text(sweep_vars["args_json"][0])
    sweep_vars["interpreter"] = ["python"]
    sweep_vars["program"] = [sweep_config.get("program", "")]
    sweep_vars["args_json_file"] = [str(json_path)]
    if platform.system() != "Windows":
        sweep_vars["env"] = ["/usr/bin/env"]

    argv: list[str] = []
    for chunk in sweep_command:
        chunk = str(chunk)
        if chunk.startswith("${") and chunk.endswith("}"):
            argv += sweep_vars.get(chunk[2:-1]) or []
        else:
            argv.append(chunk)
    return argv


def start_program(launch: Launch) -> subprocess.Popen:
    """Start the program as `wandb agent` does: own process group (so a Ctrl-C at the terminal
    reaches the agent, which then stops the run on its terms), stdin closed. Its output comes
    back through a pipe so the agent can show it and keep its tail. It dies with the agent: a
    run whose agent is gone can never be recorded. Raises OSError when it cannot be started."""
    process = start_child(
        launch.argv, env=launch.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    process.stdin.close()
    return process


def run_dirs(wandb_dir: Path, run_id: str) -> frozenset[Path]:
    """The run id's W&B folders: `run-<time>-<id>/` online, `offline-run-<time>-<id>/` offline."""
    return frozenset(wandb_dir.glob(f"*run-*-{run_id}"))


def find_run_file(wandb_dir: Path, run_id: str, earlier: frozenset[Path]) -> Path | None:
    """The `.wandb` log the program's wandb.init() created for this launch, once it exists.

    A requeued run id has folders from earlier launches, and something may still be writing to one
    (an orphaned `wandb-core`): only a folder that was not there at launch is this launch's."""
    logs = [folder / f"run-{run_id}.wandb" for folder in run_dirs(wandb_dir, run_id) - earlier]
    return max((log for log in logs if log.exists()), key=lambda log: log.parent.name, default=None)
