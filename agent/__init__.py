"""LoRA fine-tuning sweeps on W&B: the trial program, a local sweep controller and sweep review."""

__version__ = "0.1.0"
