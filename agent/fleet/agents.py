"""What runs on each GPU: a real `wandb agent` for a W&B sweep, a local agent for a local one."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from agent.fleet.supervisor import AgentChild
from agent.records import safe_name
from agent.trial.gpu_share import SHARE_ENV


def wandb_agent_argv(wandb: str, sweep_path: str, count: int | None) -> tuple[str, ...]:
    # --forward-signals: without it `wandb agent` keeps SIGTERM to itself and the run never hears
    # of a preemption, so it can neither checkpoint nor be marked preempting.
    count_args = ("--count", str(count)) if count else ()
    return (wandb, "agent", "--forward-signals", *count_args, sweep_path)


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
