"""The entry point every sweep agent launches: `python -m agent.train --name=value ...`.

Sweeps registered on W&B name this module in their command (or `program: agent/train.py`), so it
stays here; the trial program itself is `agent.trial.program`.

An agent runs `python` from PATH. When that python is not the one lora-sweep is installed in, the
imports fail in confusing ways (a `./wandb` run folder even imports as an empty `wandb`), so say
what is wrong in one line before trying.
"""

import importlib.util
import sys

NEEDED = ("agent", "wandb", "torch", "transformers", "peft")  # `agent`: this project, installed


def environment_problem() -> str | None:
    """Why this python cannot run a trial, or None. Looks the packages up without importing them."""
    missing = []
    for name in NEEDED:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin in (None, "namespace"):  # a bare folder (./wandb), not the package
            missing.append(name)
    if not missing:
        return None
    return (
        f"error: {sys.executable} cannot import {', '.join(missing)}: it is not the python lora-sweep is"
        " installed in. Start the agent from the project's environment (.venv/bin/lora-sweep, or activate"
        " it first), or install the project into this python: pip install -e ."
    )


if __name__ == "__main__":
    problem = environment_problem()
    if problem:
        print(problem, file=sys.stderr)
        sys.exit(1)
    from agent.trial.program import main

    sys.exit(main())
