"""The docs stay true to the code: the reference sections are what `make docs` writes from it, and
every command is in the README, and every test a doc cites exists."""

import ast
import importlib.util
import re
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


CITED_TEST = re.compile(r"tests/(?P<file>\w+\.py)(?:::(?P<name>\w+))?")


@pytest.mark.parametrize("doc", sorted((ROOT / "docs").glob("*.md")), ids=lambda path: path.name)
def test_every_test_a_doc_cites_exists(doc):
    missing = []
    for match in CITED_TEST.finditer(doc.read_text()):
        path, name = ROOT / "tests" / match["file"], match["name"]
        if not path.exists() or (name and name not in functions_in(path)):
            missing.append(match[0])
    assert not missing, f"docs/{doc.name} cites tests that do not exist: {missing}"


def functions_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
