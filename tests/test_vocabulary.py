"""One vocabulary: every key a run's summary is read or written under is named in agent/records.py.

A key spelt out as a string somewhere else is a second home for it, and the two drift (a review that
reads `train/tokens_per_s` while the trial writes another name shows an empty chart, not an error).
"""

from __future__ import annotations

import ast
from pathlib import Path

import agent
from agent import records

PACKAGE = Path(agent.__file__).parent


def is_summary(node: ast.expr) -> bool:
    """`run.summary`, `self.run.summary`, or a local named `summary`."""
    return (isinstance(node, ast.Attribute) and node.attr == "summary") or (
        isinstance(node, ast.Name) and node.id == "summary"
    )


def literal_summary_keys(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, key) for each string literal used as a summary key: `summary["k"]`, `summary.get("k")`,
    `summary.update({"k": ...})`, `summary.pop("k")`, `summary.setdefault("k", ...)`."""
    found = []
    for node in ast.walk(tree):
        keys: list[ast.expr] = []
        if isinstance(node, ast.Subscript) and is_summary(node.value):
            keys = [node.slice]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and is_summary(node.func.value):
            if node.func.attr in ("get", "pop", "setdefault") and node.args:
                keys = [node.args[0]]
            elif node.func.attr == "update" and node.args and isinstance(node.args[0], ast.Dict):
                keys = [key for key in node.args[0].keys if key is not None]
        strings = [key for key in keys if isinstance(key, ast.Constant) and isinstance(key.value, str)]
        found += [(key.lineno, key.value) for key in strings]
    return sorted(found)


def test_no_summary_key_is_spelt_out_outside_records():
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {key!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != Path(records.__file__)
        for line, key in literal_summary_keys(ast.parse(path.read_text()))
    ]
    assert not offenders, "name these keys in agent/records.py and import them:\n" + "\n".join(offenders)


def test_the_check_finds_each_way_of_spelling_a_key_out():
    code = """
run.summary["a/b"] = 1
x = self.run.summary.get("c/d")
summary.update({"e/f": 1, KEY: 2})
run.summary[KEY] = 3
run.summary[f"final/{name}"] = 4
"""
    assert [key for _, key in literal_summary_keys(ast.parse(code))] == ["a/b", "c/d", "e/f"]
