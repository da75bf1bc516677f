"""The local agent's settings and their defaults: one definition, read by the CLI and the library.

Kept free of heavy imports so `lora-sweep --help` can show the defaults without loading W&B.
"""

from __future__ import annotations

from dataclasses import dataclass

HEARTBEAT_INTERVAL_S = 2.0
"""How often a running run's agent says it is alive."""
HEARTBEAT_TIMEOUT_S = 60.0
"""A running run whose heartbeat is older than this is requeued by the next agent that asks."""
SAFE_TIMEOUT_BEATS = 5
"""The timeout must span this many beats: a loaded machine delays a beat by seconds, and a live
run taken for dead runs twice (with 1 s, 6 points once ran 12 times)."""
MIN_HEARTBEAT_TIMEOUT_S = SAFE_TIMEOUT_BEATS * HEARTBEAT_INTERVAL_S
KILL_GRACE_S = 30.0
"""Seconds between SIGTERM and SIGKILL when a run is stopped (W&B's agent waits 30)."""


@dataclass(frozen=True)
class AgentOptions:
    count: int | None = None
    """Runs this agent executes at most; None: until the sweep has no more."""
    max_consecutive_failed_runs: int | None = None
    heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S
    heartbeat_timeout_s: float = HEARTBEAT_TIMEOUT_S
    kill_grace_s: float = KILL_GRACE_S
    poll_interval_s: float = 0.2
    wait_interval_s: float = 1.0

    def __post_init__(self) -> None:
        problem = heartbeat_timeout_problem(self.heartbeat_timeout_s, self.heartbeat_interval_s)
        if problem:
            raise ValueError(problem)


def heartbeat_timeout_problem(timeout_s: float, interval_s: float = HEARTBEAT_INTERVAL_S) -> str | None:
    """Why `timeout_s` would requeue live runs, or None when it is safe."""
    minimum = SAFE_TIMEOUT_BEATS * interval_s
    if timeout_s < minimum:
        return (
            f"--heartbeat-timeout {timeout_s:g} is too short: agents beat every {interval_s:g}s and a"
            f" live run would be taken for dead and run twice; use at least {minimum:g}"
        )
    return None
