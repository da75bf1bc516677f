"""Click options written from a dataclass's fields: the dataclass is the schema, as in litgpt.

A field with help (`option(default, help=...)`, or `metadata["help"]`) becomes the option
`--field-name` (a unit suffix such as `_s` or `_gb` dropped: the help names the unit), whose value
lands under the field's own name. Its type, default and whether it is required are the field's:
`int` and `float` (bounded by `min`, and `min_open` for a strict bound), `bool` a flag, `str`,
`str | None`, a `Literal` of choices, and `tuple[str, ...]` a repeatable option. The rest of the
metadata is plain data too: `metavar`, `envvar` (shown in --help), and `default_help` for a
default of None that the command resolves itself. A field without help is no option.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, field, fields
from typing import Any

import click

UNIT_SUFFIXES = ("_s", "_gb")


def option(default: Any = MISSING, *, help: str, **metadata: Any) -> Any:
    """A dataclass field that `field_options` makes an option of; no default: a required one."""
    return field(default=default, metadata={"help": help, **metadata})


def field_options(cls: type) -> Callable:
    """A decorator adding an option for each of `cls`'s fields that has help, in field order."""
    hints = typing.get_type_hints(cls)
    options = [field_option(each, hints[each.name]) for each in fields(cls) if "help" in each.metadata]

    def decorate(command: Callable) -> Callable:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def from_params(cls: type, params: Mapping[str, Any]) -> dict[str, Any]:
    """The values of `cls`'s fields among a command's parameters, to build it with `cls(**...)`."""
    return {each.name: params[each.name] for each in fields(cls) if each.name in params}


def option_name(field_name: str) -> str:
    for suffix in UNIT_SUFFIXES:
        field_name = field_name.removesuffix(suffix)
    return "--" + field_name.replace("_", "-")


def field_option(spec: Field, kind: Any) -> Callable:
    meta = spec.metadata
    required = spec.default is MISSING and spec.default_factory is MISSING
    default = None if required or spec.default is MISSING else spec.default
    settings: dict[str, Any] = {"required": required, "help": meta["help"]}
    if kind is bool:
        settings["is_flag"] = True
    else:
        settings |= value_settings(kind, meta)
    if default not in (None, False, ()):  # click's own: no value, an unset flag, a repeatable given none
        settings |= {"default": default, "show_default": True}
    if "default_help" in meta:
        settings["help"] += f"  [default: {meta['default_help']}]"
    if "metavar" in meta:
        settings["metavar"] = meta["metavar"]
    if "envvar" in meta:
        settings |= {"envvar": meta["envvar"], "show_envvar": True}
    return click.option(option_name(spec.name), spec.name, **settings)


def value_settings(kind: Any, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The click type of a field's annotation (and `multiple` for a tuple)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType) and type(None) in args:  # X | None: an optional X
        (kind,) = (arg for arg in args if arg is not type(None))
        origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Literal:
        return {"type": click.Choice(args)}
    if origin is tuple:
        return {"type": args[0], "multiple": True}
    if kind in (int, float) and "min" in meta:
        bounded = click.IntRange if kind is int else click.FloatRange
        return {"type": bounded(min=meta["min"], min_open=meta.get("min_open", False))}
    return {"type": kind}
