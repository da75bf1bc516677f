"""The smallest sweep program: starts a W&B run and ends it (benchmarks/agent_overhead.py)."""

import wandb

wandb.init()
wandb.finish()
