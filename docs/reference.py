"""Writes the reference sections of docs/*.md from the code: `make docs`.

A section is whatever stands between `<!-- reference: NAME -->` and `<!-- end reference -->`.
NAME is `parameters` (the trial program's) or a command as typed, such as `lora-sweep pods up`,
found through `agent.cli.main`. Tables are built from the click objects themselves, not from their
formatted `--help`, so a change in click's layout changes nothing here. tests/test_docs.py
regenerates every section in memory and fails when a file is out of date.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import click

DOCS = Path(__file__).resolve().parent
SECTION = re.compile(r"(<!-- reference: (?P<name>[^>]+?) -->\n).*?(?=<!-- end reference -->)", re.S)


def regenerate(text: str) -> str:
    """`text` with every reference section rewritten from the code."""
    return SECTION.sub(lambda match: match.group(1) + section(match.group("name")), text)


def section(name: str) -> str:
    if name == "parameters":
        return parameters_table()
    if name.startswith("lora-sweep"):
        return command_reference(name.split()[1:])
    raise ValueError(f"unknown reference section {name!r}")


def parameters_table() -> str:
    from agent.trial.config import PARAMETER_TYPES, PARAMETERS

    rows = ["| name | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, spec in PARAMETERS.items():
        rows.append(f"| `{name}` | {PARAMETER_TYPES[name].__name__} | `{spec.default}` | {spec.metadata['help']} |")
    return "\n".join(rows) + "\n"


def command_reference(names: list[str]) -> str:
    """Usage and help text as the command's docstring holds them, then its options and subcommands."""
    from agent.cli import main

    command, context = main, click.Context(main, info_name="lora-sweep")
    for name in names:
        command = command.get_command(context, name)
        context = click.Context(command, info_name=name, parent=context)
    usage = " ".join([context.command_path, *command.collect_usage_pieces(context)])
    help_lines = [line for line in inspect.cleandoc(command.help or "").splitlines() if line != "\b"]
    out = ["```", usage, "", *help_lines, "```", ""]
    options = [param for param in command.params if isinstance(param, click.Option) and not param.hidden]
    if options:
        out += ["| option | value | default | meaning |", "| --- | --- | --- | --- |"]
        out += [option_row(option) for option in options]
        out.append("")
    if isinstance(command, click.Group):
        out += ["| command | what it does |", "| --- | --- |"]
        subcommands = [(name, command.get_command(context, name)) for name in command.list_commands(context)]
        out += [f"| `{name}` | {sub.get_short_help_str(limit=200)} |" for name, sub in subcommands]
        out.append("")
    return "\n".join(out)


def option_row(option: click.Option) -> str:
    names = ", ".join(f"`{name}`" for name in option.opts + option.secondary_opts)
    cells = [names, value_of(option), default_of(option), option.help or ""]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"  # a bare | splits the cell


def value_of(option: click.Option) -> str:
    """What the option takes: nothing for a flag, else its metavar, choices, or type and range."""
    if option.is_flag:
        return ""
    if option.metavar:
        return f"`{option.metavar}`"
    kind = option.type
    if isinstance(kind, click.Choice):
        return " / ".join(f"`{choice}`" for choice in kind.choices)
    if isinstance(kind, (click.IntRange, click.FloatRange)):
        base = "integer" if isinstance(kind, click.IntRange) else "number"
        bounds = [f"{'>' if kind.min_open else '≥'} {kind.min}"] if kind.min is not None else []
        bounds += [f"{'<' if kind.max_open else '≤'} {kind.max}"] if kind.max is not None else []
        return f"{base} {', '.join(bounds)}".strip()
    return {"integer": "integer", "float": "number"}.get(kind.name, kind.name)


def default_of(option: click.Option) -> str:
    """The default as the user meets it: the option's own wording when it has one; `required`; its env var."""
    parts = []
    if isinstance(option.show_default, str):
        parts.append(option.show_default)
    elif option.required:
        parts.append("required")
    elif option.to_info_dict()["default"] is not None and not option.is_flag:  # the info dict says None for unset
        parts.append(f"`{option.default}`")
    if option.envvar:
        parts.append(f"env `{option.envvar}`")
    return "; ".join(parts)


def main() -> None:
    for path in sorted(DOCS.glob("*.md")):
        text = path.read_text()
        if regenerate(text) != text:
            path.write_text(regenerate(text))
            print(f"updated {path.relative_to(DOCS.parent)}")


if __name__ == "__main__":
    main()
