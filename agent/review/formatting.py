"""Values as people read them, in every view of the review: tables, verdicts and figure ticks.

A leaf: it imports nothing of the review, so pure logic (`verdict`) can use it without the figures.
"""

from __future__ import annotations


def format_value(value) -> str:
    """A parameter value as people read it: 0.001 not 0.0010000, 8 not 8.0."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e6 else f"{value:g}"
    return str(value)


def format_param(value) -> str:
    return "-" if value is None else format_value(value)


def format_number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
