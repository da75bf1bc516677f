"""LoRA fine-tuning sweeps on W&B: the trial program, a local sweep controller and sweep review."""

__version__ = "0.1.0"

import warnings

# W&B's sweeps engine declares a pydantic v1 config key; pydantic 2 warns on every import of it.
warnings.filterwarnings("ignore", message="Valid config keys have changed in V2", category=UserWarning)
