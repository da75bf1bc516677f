"""What runs on each GPU: a real `wandb agent` for a W&B sweep, a local agent for a local one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.env_vars import SHARE_ENV
from agent.errors import UserError
from agent.fleet.supervisor import AgentChild
from agent.records import safe_name


class AgentOptionError(UserError):
    """An option of `lora-sweep agent` that a W&B sweep's agents cannot take."""


@dataclass(frozen=True)
class WandbAgentOptions:
    """`lora-sweep agent`'s options as `wandb agent` (0.31) takes them: its flags and its environment."""

    count: int | None = None
    max_consecutive_failed_runs: int | None = None
    kill_grace_s: int = 30
    """WANDB_AGENT_KILL_DELAY: wandb reads it as whole seconds."""


LOCAL_ONLY = frozenset({"heartbeat_timeout_s"})
"""`lora-sweep agent`'s options that W&B's agents have no counterpart for."""


def wandb_agent_options(params: Mapping, typed: frozenset[str]) -> WandbAgentOptions:
    """The one mapping of `lora-sweep agent`'s options to `wandb agent`'s; an option W&B has no
    counterpart for, typed on the command line, is one line rather than silently ignored."""
    if "heartbeat_timeout_s" in typed:
        raise AgentOptionError("--heartbeat-timeout is for local sweeps: W&B's server watches its agents' heartbeats")
    kill_grace = params["kill_grace_s"]
    if kill_grace != int(kill_grace):
        raise AgentOptionError(f"--kill-grace {kill_grace:g}: `wandb agent` takes whole seconds")
    return WandbAgentOptions(params["count"], params["max_consecutive_failed_runs"], int(kill_grace))


def wandb_agent_argv(wandb: str, sweep_path: str, options: WandbAgentOptions) -> tuple[str, ...]:
    # --forward-signals: without it `wandb agent` keeps SIGTERM to itself and the run never hears
    # of a preemption, so it can neither checkpoint nor be marked preempting.
    count_args = ("--count", str(options.count)) if options.count else ()
    failed = options.max_consecutive_failed_runs
    failed_args = ("--max-consecutive-failed-runs", str(failed)) if failed else ()
    return (wandb, "agent", "--forward-signals", *count_args, *failed_args, sweep_path)


def wandb_agent_env(base_env: Mapping[str, str], options: WandbAgentOptions) -> dict[str, str]:
    return {**base_env, "WANDB_AGENT_KILL_DELAY": str(options.kill_grace_s)}


def local_agent_argv(python: str, sweep_id: str, store_path: Path, agent_flags: tuple[str, ...]) -> tuple[str, ...]:
    # Through the CLI, as a user would start it, so the local agent's options keep one home.
    return (python, "-m", "agent.cli", "agent", sweep_id, "--store", str(store_path), *agent_flags)


def children_per_gpu(
    argv: tuple[str, ...], gpus: tuple[str, ...], base_env: Mapping[str, str], log_dir: Path, agents_per_gpu: int = 1
) -> list[AgentChild]:
    """`agents_per_gpu` children per GPU, each seeing only its own GPU.

    Several on one GPU are labelled `gpu 0.0`, `gpu 0.1`, ... and each learns its memory share
    (LORA_SWEEP_GPU_SHARE=1/N). They are ordered slot by slot, so the stagger starts one agent on
    every GPU before a second on any.
    """
    env = {**base_env, "PYTHONUNBUFFERED": "1"}
    if agents_per_gpu > 1:
        env[SHARE_ENV] = f"1/{agents_per_gpu}"
    return [
        AgentChild(
            label=f"gpu {name}",
            argv=argv,
            env={**env, "CUDA_VISIBLE_DEVICES": gpu},
            log_path=log_dir / f"gpu-{safe_name(name)}.log",
        )
        for slot in range(agents_per_gpu)
        for gpu in gpus
        for name in [gpu if agents_per_gpu == 1 else f"{gpu}.{slot}"]
    ]


def single_child(argv: tuple[str, ...], base_env: Mapping[str, str], log_dir: Path) -> list[AgentChild]:
    """One child that sees whatever GPUs this process sees (a W&B sweep without --gpus)."""
    env = {**base_env, "PYTHONUNBUFFERED": "1"}
    return [AgentChild(label="agent", argv=argv, env=env, log_path=log_dir / "agent.log")]


def default_log_dir(sweep_id: str) -> Path:
    return Path(".lora-sweep", "logs", safe_name(sweep_id))
