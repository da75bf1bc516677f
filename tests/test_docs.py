"""The docs stay true to the code: the reference sections are what `make docs` writes from it, and
every command is in the README."""

import importlib.util
from pathlib import Path

import pytest

from agent.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "docs" / "reference.py")
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)


@pytest.mark.parametrize("doc", sorted((ROOT / "docs").glob("*.md")), ids=lambda path: path.name)
def test_the_reference_sections_are_current(doc):
    text = doc.read_text()
    assert reference.regenerate(text) == text, f"docs/{doc.name} is out of date with the code: run `make docs`"


def test_the_reference_covers_every_trial_parameter_and_the_gpu_commands():
    names = {
        match.group("name")
        for doc in (ROOT / "docs").glob("*.md")
        for match in reference.SECTION.finditer(doc.read_text())
    }
    assert {"parameters", "lora-sweep agent", "lora-sweep pods", "lora-sweep pods up"} <= names


def test_every_command_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for name in COMMANDS:
        assert f"`{name}`" in readme, name
