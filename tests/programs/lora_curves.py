"""Stand-in trial program: logs, through wandb, the curves a LoRA trial of known behaviour would.

From the sweep (wandb.config): lora_r, learning_rate, target_modules, max_steps, eval_steps and
logging_steps, as the trial program takes them. By construction:
- ROUGE-L climbs from 5 at step 0 and stays flat once it reaches its top, by step 40 at learning
  rate 1e-3 and by step 120 otherwise; the top is 14 at rank 8, 14.2 at rank 32, 0.1 higher with
  qkvo, and 3 lower at any other learning rate than 1e-3;
- train/loss falls smoothly, with a little alternating noise, and jumps once at step 100 for rank
  32 with qv at learning rate 1e-3;
- the summary holds the trainable parameters (rank x 1000, twice that with qkvo) and GPU memory
  (a 24 GB GPU, 4 GB held between steps, a peak of 6 GB + 0.05 GB per rank, 1 GB more with qkvo).
"""

import wandb

run = wandb.init()
config = dict(run.config)
rank, rate, modules = int(config["lora_r"]), float(config["learning_rate"]), config["target_modules"]
fast = abs(rate - 1e-3) < 1e-12
top = {8: 14.0, 32: 14.2}.get(rank, 13.0) + (0.1 if modules == "qkvo" else 0.0) - (0.0 if fast else 3.0)
speed = 40 if fast else 120
spike_at = 100 if (rank, modules, fast) == (32, "qv", True) else None

best = 0.0
for step in range(0, int(config["max_steps"]) + 1):
    row = {"train/global_step": step}
    if step % int(config["eval_steps"]) == 0:
        row["eval/rougeL"] = 5.0 + (top - 5.0) * min(1.0, step / speed)
        best = max(best, row["eval/rougeL"])
    if step and step % int(config["logging_steps"]) == 0:
        k = step // int(config["logging_steps"])
        row["train/loss"] = 3.0 - 1.5 * min(1.0, step / speed) + (0.02 if k % 2 else -0.02)
        row["train/loss"] += 1.5 if step == spike_at else 0.0
        row["gpu/allocated_gb"] = 4.0
    if len(row) > 1:
        wandb.log(row)
run.summary.update(
    {
        "eval/rougeL": best,
        "train/trainable_params": rank * 1000 * (2 if modules == "qkvo" else 1),
        "gpu/peak_allocated_gb": 6.0 + 0.05 * rank + (1.0 if modules == "qkvo" else 0.0),
        "gpu/total_gb": 24.0,
    }
)
wandb.finish()
