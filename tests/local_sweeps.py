"""The local-sweep helpers under the name their importers use; they live in helpers.py."""

from helpers import (  # noqa: F401
    MARK,
    MARK_VAR,
    PROGRAMS,
    PYTHON_COMMAND,
    agent_env,
    create_sweep,
    marked_processes,
    no_leaked_processes,
    runs_of,
    start_agent,
    wait_for,
    wait_until_no_marked_processes,
)
