"""The docs stay true to the code: every parameter and every command is documented."""

from pathlib import Path

from agent.cli import COMMANDS
from agent.trial.config import PARAMETER_TYPES, PARAMETERS

ROOT = Path(__file__).resolve().parents[1]


def test_every_trial_parameter_is_in_the_reference():
    reference = (ROOT / "docs" / "trial.md").read_text()
    for name, spec in PARAMETERS.items():
        assert f"| `{name}` | {PARAMETER_TYPES[name].__name__} | `{spec.default}` |" in reference, name


def test_every_command_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for name in COMMANDS:
        assert f"`{name}`" in readme, name
