"""`lora-sweep`: the root of the command line. Each part keeps its own commands (`agent/*/cli.py`);
the root only names them, loads one when it is used, and turns a `UserError` into one line."""

from __future__ import annotations

import importlib

import click

from agent.errors import UserError

COMMANDS = {
    "validate": "agent.local.cli:validate_command",
    "sweep": "agent.local.cli:sweep_command",
    "runs": "agent.local.cli:runs_command",
    "demo": "agent.review.cli:demo_command",
    "agent": "agent.fleet.cli:agent_command",
    "pods": "agent.fleet.cli:pods_group",
    "sky": "agent.clusters.cloud_cli:sky_group",
    "k8s": "agent.clusters.cloud_cli:k8s_group",
    "slurm": "agent.clusters.slurm_cli:slurm_group",
    "report": "agent.review.cli:report_command",
    "dashboard": "agent.review.cli:dashboard_command",
}
"""Every command, by the module that defines it: `lora-sweep report` never imports the fleet's code."""


class Root(click.Group):
    """click's lazy group: a command's module is imported when that command (or `--help`) needs it."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attribute)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lora-sweep")
def main() -> None:
    """Sweeps of LoRA fine-tuning runs on W&B, or offline with an embedded local controller.

    \b
    Typical offline session:
      lora-sweep validate sweeps/smoke.yaml
      lora-sweep sweep sweeps/smoke.yaml --local
      lora-sweep agent <sweep-id>
      lora-sweep report <sweep-id>
    """


if __name__ == "__main__":
    main()
