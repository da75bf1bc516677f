"""The house keeps its shape: each part imports only the parts below it, and no module cycle exists.

Read from the source with `ast`, so the check sees lazy imports inside functions and imports under
`if TYPE_CHECKING:` too.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "agent"

# What each part may import, besides itself. The shared pieces sit beside the parts.
ALLOWED = {
    "agent.errors": set(),
    "agent.records": set(),
    "agent.signals": set(),
    "agent.trial": {"agent.errors", "agent.records", "agent.signals"},
    "agent.sweep_config": {"agent.errors", "agent.records", "agent.trial"},
    "agent.local": {"agent.errors", "agent.records", "agent.signals", "agent.sweep_config"},
    "agent.review": {"agent.errors", "agent.records", "agent.local"},
    "agent.fleet": {
        "agent.errors",
        "agent.records",
        "agent.signals",
        "agent.sweep_config",
        "agent.local",
        "agent.trial",
    },
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
