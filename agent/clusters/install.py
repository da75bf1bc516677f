"""What every node or pod of a SkyPilot task or a Kubernetes Job runs: install the package, then one
`lora-sweep agent` per GPU until the sweep has no more runs for it.

The package is the one `pods up` installs (the same `--package`, resolved and checked the same way,
agent/fleet/package_check.py), and torch comes first from the same index. The values travel as the
pod's environment variables (agent/env_vars.py), so the generated file shows each once.
"""

from __future__ import annotations

import re

import yaml

from agent.env_vars import PACKAGE_ENV, SWEEP_ID_ENV, TORCH_INDEX_ENV
from agent.errors import UserError
from agent.fleet.field_options import option
from agent.fleet.pods import DEFAULT_TORCH_INDEX
from agent.records import is_wandb_path

WANDB_KEY = "WANDB_API_KEY"
"""The one secret every node needs; it is carried by name, never by value."""

INSTALL = f"""\
if [ -n "${TORCH_INDEX_ENV}" ]; then pip install --quiet torch --index-url "${TORCH_INDEX_ENV}"; fi
pip install --quiet "${PACKAGE_ENV}"
"""
"""Torch from its index ("" keeps the image's torch), then the package: as the pod script does."""

AGENT = f'exec lora-sweep agent "${SWEEP_ID_ENV}" --gpus all\n'
"""One agent per visible GPU. `exec`: the supervisor becomes the main process, the one a scheduler
signals, and it forwards SIGTERM to every agent (agent/fleet/supervisor.py)."""

PREEMPTED_EXIT = 143
"""What the supervisor exits with after a SIGTERM (128 + 15): the node or pod was preempted, not failed."""

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
GPU_SPEC = re.compile(r"(?P<type>[A-Za-z][A-Za-z0-9_.-]*):(?P<count>[1-9][0-9]*)")


class ClusterError(UserError):
    """The file cannot be written as asked; the message is one line for the user."""


def package_option(where: str):
    """The `--package` option of `pods up`, for a command that installs the package `where`."""
    return option(
        None,
        help=f"pip requirement installed {where}, name==version or name @ git+URL@REF; checked first",
        default_help="this clone's commit on its origin, else this version",
    )


def torch_index_option():
    return option(
        DEFAULT_TORCH_INDEX,
        help='pip index of the torch build installed before the package, CUDA 12.8 wheels ("" keeps the image\'s).',
    )


def check_sweep_id(sweep_id: str, machines: str) -> None:
    """Only a W&B sweep spreads over machines: a local sweep's SQLite store stays on one local disk
    (its locks are unreliable over network filesystems), where these machines cannot reach it."""
    if not is_wandb_path(sweep_id):
        raise ClusterError(
            f"{sweep_id!r}: {machines} work a W&B sweep, entity/project/id; a local sweep's store stays on "
            "this machine (create the sweep on W&B: wandb sweep FILE)"
        )


def check_gpu_spec(spec: str) -> tuple[str, int]:
    """`A100:2` as (type, count); anything else is one line naming the form."""
    match = GPU_SPEC.fullmatch(spec.strip())
    if match is None:
        raise ClusterError(f"--gpus {spec!r}: give TYPE:N, such as A100:1 or H100:8")
    return match["type"], int(match["count"])


def dump_yaml(data: dict) -> str:
    """YAML as people write it: keys in order, a multi-line script as a `|` block."""
    return yaml.dump(data, Dumper=BlockDumper, sort_keys=False)


class BlockDumper(yaml.SafeDumper):
    """Writes a string with a newline as a `|` block."""


def _block(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


BlockDumper.add_representer(str, _block)
