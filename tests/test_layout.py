"""The house keeps its shape: each part imports only the parts below it, and no module cycle exists.

Read from the source with `ast`, so the check sees lazy imports inside functions and imports under
`if TYPE_CHECKING:` too.
"""

from __future__ import annotations

import ast
import graphlib
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "agent"

# What each part may import, besides itself. The shared pieces sit beside the parts; errors,
# records and env_vars (the table of environment variables) import nothing of ours.
SHARED = {"agent.errors", "agent.records", "agent.env_vars"}
ALLOWED = {
    "agent.errors": set(),
    "agent.records": set(),
    "agent.env_vars": set(),
    "agent.signals": set(),
    "agent.trial": SHARED | {"agent.signals"},
    "agent.sweep_config": SHARED | {"agent.trial"},
    "agent.local": SHARED | {"agent.signals", "agent.sweep_config"},
    "agent.review": SHARED | {"agent.sweep_config", "agent.local"},
    "agent.fleet": SHARED | {"agent.signals", "agent.sweep_config", "agent.local", "agent.trial"},
    # Slurm, SkyPilot and Kubernetes files around `lora-sweep agent`, which the fleet defines.
    "agent.clusters": SHARED | {"agent.sweep_config", "agent.local", "agent.fleet"},
    "agent.train": {"agent.trial"},
    # The root names each part's commands by module path and imports them when used.
    "agent.cli": {"agent.errors"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every import of the module, lazy ones and `if TYPE_CHECKING:` ones included: a module that names
    another in its annotations depends on it for the reader, so a cycle through annotations is a cycle."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name == "agent" or name.startswith("agent.")}


def part_of(module: str) -> str:
    for part in sorted(ALLOWED, key=len, reverse=True):
        if module == part or module.startswith(part + "."):
            return part
    return module


MODULES = {module_name(path): imports_of(path) for path in PACKAGE.rglob("*.py")}


def imported_modules(module: str) -> set[str]:
    """What `module` imports, as modules of ours (`from agent.x import name` counts as agent.x)."""
    found = {target if target in MODULES else target.rsplit(".", 1)[0] for target in MODULES[module]}
    return (found & set(MODULES)) - {"agent"}  # the root package is every module's parent, not a part


def test_every_part_imports_only_the_parts_below_it():
    wrong = [
        f"{module} imports {target}"
        for module in MODULES
        for target in imported_modules(module)
        if part_of(target) != part_of(module) and part_of(target) not in ALLOWED[part_of(module)]
    ]
    assert wrong == []


def test_no_import_cycle():
    graph = {module: imported_modules(module) - {module} for module in MODULES}
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        raise AssertionError(f"import cycle: {' -> '.join(error.args[1])}") from None


def test_the_fleet_imports_of_the_trial_program_are_these_only():
    # The supervisor writes the shutdown notice the trial reads; a new import is a deliberate change.
    imported = {
        target
        for module in MODULES
        if part_of(module) == "agent.fleet"
        for target in imported_modules(module)
        if part_of(target) == "agent.trial" and target != "agent.trial"
    }
    assert imported == {"agent.trial.shutdown_notice"}


ENV_NAME = re.compile(r"LORA_SWEEP_[A-Z0-9_]*[A-Z0-9]")


def env_names_in(path: Path) -> set[str]:
    """Every `LORA_SWEEP_...` name in the module's strings: code, f-strings and docstrings alike."""
    strings = [node.value for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Constant)]
    return {name for text in strings if isinstance(text, str) for name in ENV_NAME.findall(text)}


def test_every_lora_sweep_variable_in_the_code_is_in_the_table_of_environment_variables():
    from agent.env_vars import TABLE

    found = {module_name(path): env_names_in(path) for path in PACKAGE.rglob("*.py")}
    unknown = {module: sorted(names - set(TABLE)) for module, names in found.items() if names - set(TABLE)}
    assert unknown == {}
