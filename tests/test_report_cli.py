"""`lora-sweep report` as a user meets it: help text and one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from agent.cli import main


def test_report_help_names_both_kinds_of_sweep_and_the_rerun():
    result = CliRunner().invoke(main, ["report", "--help"])
    assert result.exit_code == 0
    assert "entity/project/id" in result.output
    assert "--out" in result.output and "--store" in result.output
    assert "python -m agent.train --config" in result.output


def test_a_malformed_sweep_id_is_one_line_on_stderr():
    result = CliRunner().invoke(main, ["report", "project/sweep"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "Error: 'project/sweep' is neither a local sweep id nor a W&B path entity/project/id\n"


def test_every_picture_in_the_review_docs_exists():
    docs = Path(__file__).resolve().parents[1] / "docs"
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (docs / "review.md").read_text())
    assert "images/review/report_html.png" in pictures  # the HTML page as a browser shows it
    for picture in pictures:
        assert (docs / picture).is_file(), picture
