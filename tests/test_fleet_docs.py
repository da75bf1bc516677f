"""docs/gpu.md stays true to the commands: each `--help` appears in it verbatim."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import main

GPU_DOC = Path(__file__).resolve().parents[1] / "docs" / "gpu.md"


@pytest.mark.parametrize("command", [["agent"], ["pods"], ["pods", "up"], ["pods", "status"], ["pods", "down"]])
def test_the_help_of_each_gpu_command_is_in_docs_gpu_md(command):
    result = CliRunner().invoke(main, [*command, "--help"], prog_name="lora-sweep", terminal_width=100)

    assert result.exit_code == 0
    assert f"```\n{result.output.rstrip()}\n```" in GPU_DOC.read_text(), (
        f"docs/gpu.md: the `lora-sweep {' '.join(command)} --help` block differs from the command's help"
    )
