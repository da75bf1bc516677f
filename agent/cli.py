"""`lora-sweep`: validate, run and review LoRA sweeps, on W&B or fully offline."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
