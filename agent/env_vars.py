"""Every `LORA_SWEEP_*` environment variable, in one table: its name, who sets it, who reads it, and what it means.

Code names a variable by its constant here (`env[SHARE_ENV] = "1/4"`); tests/test_layout.py holds
every `LORA_SWEEP_` name in agent/'s strings (help text and docstrings too) to this table, and
tests/test_fleet_pods.py every name the pod script reads. This module imports nothing of ours:
every part may read it.

Most are read at an entry point only (the trial program's, a command's option, the pod script),
and passed down from there as values.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnvVar:
    name: str
    set_by: str
    read_by: str
    help: str


TABLE: dict[str, EnvVar] = {}
"""Every variable by name, in the order of this file."""


def variable(name: str, *, set_by: str, read_by: str, help: str) -> str:
    """Enter one variable in TABLE; returns its name, for the code to use."""
    assert name.startswith("LORA_SWEEP_") and name not in TABLE, name
    TABLE[name] = EnvVar(name, set_by, read_by, help)
    return name


# Read by the trial program (`python -m agent.train`) ---------------------------------------------

GPU_HOURLY_USD_ENV = variable(
    "LORA_SWEEP_GPU_HOURLY_USD",
    set_by="`pods up` (RunPod's price, agent/fleet/pods.py), `lora-sweep agent --gpu-hourly-usd` "
    "(agent/local/cli.py), or the user",
    read_by="the trial program (agent/trial/program.py); `lora-sweep agent`, as --gpu-hourly-usd's variable",
    help="The price of one hour of a whole GPU, in US dollars: every run logs cost/usd at it. A run that "
    "shares its GPU (LORA_SWEEP_GPU_SHARE=1/N) pays its share: the one place the price is divided.",
)
SHARE_ENV = variable(
    "LORA_SWEEP_GPU_SHARE",
    set_by="the supervisor, for agents that share a GPU (agent/fleet/agents.py, --agents-per-gpu N)",
    read_by="the trial program (agent/trial/program.py, agent/trial/gpu_share.py)",
    help="1/N: the share of its GPU's memory a run may use; it caps its CUDA memory there and logs gpu/share.",
)
NOTICE_ENV = variable(
    "LORA_SWEEP_SHUTDOWN_NOTICE",
    set_by="the supervisor, for everything it starts (agent/fleet/supervisor.py)",
    read_by="the trial program on SIGTERM (agent/trial/shutdown_notice.py)",
    help="The supervisor's notice file, which tells a preemption from a controller's stop, and says when "
    "the supervisor got the signal.",
)
CACHE_ENV = variable(
    "LORA_SWEEP_CACHE",
    set_by="the user",
    read_by="the trial program's entry point (agent/trial/program.py `Surroundings`), which passes it down",
    help="Where the built-in tiny model is cached, keyed by its recipe (default ~/.cache/lora-sweep).",
)

# Read by the local controller's commands (agent/local/) --------------------------------------------

STORE_ENV = variable(
    "LORA_SWEEP_STORE",
    set_by="the user",
    read_by="every --store option (agent/local/cli.py), so the local commands, `agent` and `report`",
    help="The SQLite file of local sweeps (default ./.lora-sweep/sweeps.db).",
)
HEARTBEAT_TIMEOUT_ENV = variable(
    "LORA_SWEEP_HEARTBEAT_TIMEOUT",
    set_by="the user",
    read_by="`lora-sweep agent --heartbeat-timeout` (agent/local/cli.py); noted and ignored for a W&B sweep",
    help="Seconds without a heartbeat after which a dead local agent's run is requeued.",
)
CLAIM_ENV = variable(
    "LORA_SWEEP_CLAIM",
    set_by="the local agent, on each run it launches (agent/local/launch.py)",
    read_by="the local agent (agent/local/processes.py: every process whose environment holds it)",
    help="The claim's mark, inherited by everything the launch starts, so that all of it is ended with the claim.",
)

# Read by the fleet's supervisor and its options (agent/fleet/) -------------------------------------

AGENTS_PER_GPU_ENV = variable(
    "LORA_SWEEP_AGENTS_PER_GPU",
    set_by="`pods up` on every pod (agent/fleet/pods.py), or the user",
    read_by="`lora-sweep agent --agents-per-gpu` (agent/fleet/cli.py); the pod script logs it",
    help="Agents on each GPU, each run capped at 1/N of its memory.",
)
STAGGER_ENV = variable(
    "LORA_SWEEP_STAGGER",
    set_by="the user",
    read_by="`lora-sweep agent --stagger` (agent/fleet/supervisor.py, SupervisorOptions)",
    help="Seconds between one supervised agent's start and the next.",
)
MAX_RESTARTS_ENV = variable(
    "LORA_SWEEP_MAX_RESTARTS",
    set_by="the user",
    read_by="`lora-sweep agent --max-restarts` (agent/fleet/supervisor.py, SupervisorOptions)",
    help="Restarts of a crashed supervised agent before it is given up.",
)
RESTART_BACKOFF_ENV = variable(
    "LORA_SWEEP_RESTART_BACKOFF",
    set_by="the user",
    read_by="`lora-sweep agent --restart-backoff` (agent/fleet/supervisor.py, SupervisorOptions)",
    help="Seconds before a crashed agent's first restart; doubles with each restart.",
)
SLOT_ENV = variable(
    "LORA_SWEEP_AGENT_SLOT",
    set_by="the supervisor, on each agent (agent/fleet/supervisor.py)",
    read_by="the supervisor (every process whose environment holds it)",
    help="The GPU slot's mark, inherited by whatever its agent starts: what a crashed agent left running "
    "on its GPU is ended before anything else starts there.",
)

# A pod's environment, set by `pods up` (agent/fleet/pods.py) and read by its start script
# (agent/fleet/pod_start.sh) -------------------------------------------------------------------

SWEEP_ID_ENV = variable(
    "LORA_SWEEP_ID",
    set_by="`pods up`; `sky task` and `k8s job`, in the file they write (agent/clusters/)",
    read_by="the pod script; the run command of a SkyPilot task's nodes and of a Kubernetes Job's pods",
    help="The W&B sweep the pod (node) works, entity/project/id.",
)
PACKAGE_ENV = variable(
    "LORA_SWEEP_PACKAGE",
    set_by="`pods up`, `sky task` and `k8s job` (--package)",
    read_by="the pod script; the setup of a SkyPilot task's nodes and of a Kubernetes Job's pods",
    help="The pip requirement for lora-sweep the pod installs: a pinned version or a git ref.",
)
TORCH_INDEX_ENV = variable(
    "LORA_SWEEP_TORCH_INDEX",
    set_by="`pods up`, `sky task` and `k8s job` (--torch-index)",
    read_by="the pod script; the setup of a SkyPilot task's nodes and of a Kubernetes Job's pods",
    help="The pip index of the torch build for the image's CUDA (\"\" keeps the image's torch).",
)
WORKDIR_ENV = variable(
    "LORA_SWEEP_WORKDIR",
    set_by="`pods up` (its WORKDIR, /workspace)",
    read_by="the pod script",
    help="Where the pod's state goes: its boot count, deadline, log and why it ended. A volume, kept "
    "across restarts; a network volume there keeps it after the pod.",
)
RUN_DIR_ENV = variable(
    "LORA_SWEEP_RUN_DIR",
    set_by="`pods up`, on a pod without a network volume (else the script falls back on the workdir)",
    read_by="the pod script",
    help="Where the agents run: their logs, W&B's run folders, outputs and checkpoints.",
)
MAX_HOURS_ENV = variable(
    "LORA_SWEEP_MAX_HOURS",
    set_by="`pods up` (--max-hours, staggered pod by pod)",
    read_by="the pod script",
    help="The deadline, in hours from the pod's first boot: the agents are stopped and the pod removed.",
)
RECLAIM_GRACE_ENV = variable(
    "LORA_SWEEP_RECLAIM_GRACE_S",
    set_by="`pods up` (RECLAIM_GRACE_S)",
    read_by="the pod script, which falls back on the same value",
    help="Seconds the agents get on SIGTERM before they are killed and the pod removed, inside RunPod's 5 s.",
)
STOP_GRACE_ENV = variable(
    "LORA_SWEEP_STOP_GRACE_S",
    set_by="`pods up` (DEADLINE_GRACE_S)",
    read_by="the pod script, which falls back on the same value",
    help="Seconds the agents get to stop at the deadline.",
)
START_ENV = variable(
    "LORA_SWEEP_START",
    set_by="`pods up`: the pod script itself, base64-encoded",
    read_by="the pod's start command (START_COMMAND in agent/fleet/pods.py), which unpacks and runs it",
    help="The shipped pod script, carried in the environment since a pod's start command is one line.",
)
IMAGE_START_ENV = variable(
    "LORA_SWEEP_IMAGE_START",
    set_by="nobody on a pod: RunPod's images keep their start script at the default, /start.sh; tests point "
    "it at a stand-in (tests/test_fleet_pod_script.py)",
    read_by="the pod script",
    help="The image's own start script (SSH and more), run in the background when it is executable.",
)
MUTATION_ENV = variable(
    "LORA_SWEEP_MUTATION",
    set_by="the pod script, for the Python it runs to call RunPod's API",
    read_by="that Python, inside the pod script",
    help="A RunPod GraphQL mutation that ends the pod: the fallback when runpodctl fails.",
)
