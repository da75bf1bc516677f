"""Sweep throughput on one GPU, in one run: training speed, agents per GPU, and evaluation speed.

On a Llama-3.2-1B-shaped base with random bf16 weights (no Hub on the GPU machine) and the
SAMSum-shaped synthetic set (`builtin:synthetic-samsum`), it prints three tables, each as it is
measured, every figure also as a ratio to the first row of its table:

1. Training, one trial in process: real tokens/s, peak memory and mean loss, padded (today's path:
   length-grouped batches padded to their longest) vs padding-free, compile off vs on (and Liger
   where installed). The losses must agree: the rows train on the same batches.
2. Sweep throughput: a grid of `--trials` short trials (seeds of one configuration) run by the real
   `lora-sweep agent --gpus 0 --agents-per-gpu N` over the local controller, for each N of
   `--agents`: trials per hour, from the agent's start to its end.
3. Evaluation: examples/s over `--eval-examples` validation prompts at full length (a random base
   never stops early), with the dynamic KV cache and with the static one (compiled on CUDA), cold
   and warm, and whether its predictions are identical.

    python benchmarks/gpu_sweep.py                  # the GPU run: about 8 minutes on an H100
    python benchmarks/gpu_sweep.py --dry-run        # the tiny shape on CPU, every path, in about a minute
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpu_trials import LLAMA_3_2_1B, TINY_SHAPE, build_random_base  # noqa: E402  (the same shapes as the earlier GPU figures)

from agent.trial.config import SAMSUM_SHAPED_DATASET, TrialConfig  # noqa: E402
from agent.trial.data import build_collator, load_dialogues, tokenize_train  # noqa: E402
from agent.trial.evaluation import Evaluator  # noqa: E402
from agent.trial.model import add_lora, load_base_model, load_tokenizer  # noqa: E402
from agent.trial.recipe import build_training_arguments  # noqa: E402

CUDA = torch.cuda.is_available()


@functools.cache
def samsum_shaped():
    return load_dialogues(SAMSUM_SHAPED_DATASET)


def main() -> None:
    cli = parse_cli()
    quiet_progress_bars()
    work = Path(tempfile.mkdtemp(prefix="lora-sweep-gpu-sweep-"))
    try:
        base = build_random_base(TINY_SHAPE if cli.dry_run else LLAMA_3_2_1B, work / "base")
        print(describe_machine(cli), flush=True)
        training_table(base, cli, work)
        sweep_table(base, cli, work)
        evaluation_table(base, cli)
    finally:
        shutil.rmtree(work, ignore_errors=True)


DRY_RUN = dict(steps=3, warmup_steps=1, trials=2, trial_steps=2, agents="1,2", eval_examples=8, max_new_tokens=8)
"""--dry-run's sizes; flags given beside it still win."""


def parse_cli(argv: list[str] | None = None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="tiny shape, a few steps, on whatever device is here")
    parser.add_argument("--steps", type=int, default=60, help="measured training steps per row (after warm-up)")
    parser.add_argument("--warmup-steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--trials", type=int, default=8, help="trials in the sweep, for every N")
    parser.add_argument("--trial-steps", type=int, default=20)
    parser.add_argument("--agents", default="1,2,4,8", help="agents per GPU to measure, in order")
    parser.add_argument("--stagger", type=float, default=1.0, help="seconds between agents' starts")
    parser.add_argument("--eval-examples", type=int, default=818, help="SAMSum's validation size")
    parser.add_argument("--eval-batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    if "--dry-run" in argv:
        parser.set_defaults(**DRY_RUN)
    cli = parser.parse_args(argv)
    cli.agent_counts = [int(n) for n in cli.agents.split(",")]
    return cli


def quiet_progress_bars() -> None:
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def describe_machine(cli: argparse.Namespace) -> str:
    import peft
    import transformers

    device = torch.cuda.get_device_name() if CUDA else "CPU"
    driver = ""
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
        driver = f", driver {subprocess.run(query, capture_output=True, text=True).stdout.strip()}"
    shape = "tiny (--dry-run)" if cli.dry_run else "Llama-3.2-1B-shaped"
    return (
        f"device: {device}{driver}; torch {torch.__version__}, transformers {transformers.__version__}, "
        f"peft {peft.__version__}\nbase: {shape}, random bf16 weights; data: {SAMSUM_SHAPED_DATASET}"
    )


# 1. Training ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrainRow:
    name: str
    padding_free: bool
    torch_compile: bool = False
    use_liger_kernel: bool = False


def training_rows(cli: argparse.Namespace) -> list[TrainRow]:
    from transformers.utils import is_liger_kernel_available

    rows = [TrainRow("padded (today)", False), TrainRow("padding-free", True)]
    if not cli.dry_run:  # inductor on a CPU takes minutes and says nothing about a GPU
        rows.append(TrainRow("padding-free, compiled", True, True))
    if CUDA and is_liger_kernel_available():
        rows.append(TrainRow("padding-free, Liger", True, use_liger_kernel=True))
    return rows


def training_table(base: Path, cli: argparse.Namespace, work: Path) -> None:
    print(f"\n1. training: {cli.steps} steps at batch {cli.batch_size} after {cli.warmup_steps} warm-up steps")
    table = Table(["setup", "real tokens/s", "ratio", "peak GiB", "mean loss", "loss - first"])
    for row in training_rows(cli):
        measured = attempt(row.name, measure_training, base, row, cli, work)
        if measured:
            table.add(row.name, *measured)
    print(table.render(ratio_of=1, difference_of=3), flush=True)


def measure_training(base: Path, row: TrainRow, cli: argparse.Namespace, work: Path) -> tuple[float, float, float]:
    from transformers import TrainerCallback, set_seed
    from transformers.trainer_callback import PrinterCallback

    from agent.trial.trainer import ResumableTrainer

    total_steps = cli.warmup_steps + cli.steps
    config = TrialConfig.from_params(
        {
            "model_name_or_path": str(base),
            "dataset": SAMSUM_SHAPED_DATASET,
            "max_steps": total_steps,
            "per_device_train_batch_size": cli.batch_size,
            "logging_steps": total_steps,
            "target_modules": "qkvo",
            "padding_free": row.padding_free,
            "torch_compile": row.torch_compile,
            "use_liger_kernel": row.use_liger_kernel,
        }
    )
    set_seed(config.train.seed)
    tokenizer = load_tokenizer(config.model)
    rows = samsum_shaped()["train"].select(range(total_steps * cli.batch_size * 2))
    train_set = tokenize_train(rows, tokenizer, config.data)
    model = add_lora(load_base_model(config.model), config.lora)
    args = dataclasses.replace(build_training_arguments(config, work / "train", "bench"), disable_tqdm=True)
    collator = build_collator(config.device.padding_free, tokenizer.pad_token_id)
    marks: list[tuple[float, int]] = []

    class Clock(TrainerCallback):
        """Time and tokens at each step's end, so warm-up steps (and compilation) stay out of the rate."""

        def on_step_end(self, *_, **__):
            if CUDA:
                torch.cuda.synchronize()
            marks.append((time.perf_counter(), collator.real_tokens))

    trainer = ResumableTrainer(
        model=model, args=args, train_dataset=train_set, data_collator=collator, callbacks=[Clock()]
    )
    trainer.remove_callback(PrinterCallback)  # its log lines would break up the table
    if CUDA:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    result = trainer.train()
    (t0, n0), (t1, n1) = marks[cli.warmup_steps - 1], marks[-1]
    peak = torch.cuda.max_memory_allocated() / 2**30 if CUDA else 0.0
    del trainer, model
    gc.collect()
    return (n1 - n0) / (t1 - t0), peak, result.training_loss


# 2. Sweep throughput --------------------------------------------------------------------------


def sweep_table(base: Path, cli: argparse.Namespace, work: Path) -> None:
    data = write_sweep_data(work / "data", cli)
    print(f"\n2. sweep: {cli.trials} trials of {cli.trial_steps} steps, lora-sweep agent --gpus 0 --agents-per-gpu N")
    table = Table(["agents per GPU", "trials/hour", "ratio", "wall s", "finished"])
    for agents in cli.agent_counts:
        measured = attempt(f"{agents} agent(s)", run_sweep, base, data, agents, cli, work / f"sweep-{agents}")
        if measured:
            wall_s, finished = measured
            table.add(str(agents), cli.trials / wall_s * 3600, wall_s, f"{finished}/{cli.trials}")
    print(table.render(ratio_of=1), flush=True)


def write_sweep_data(folder: Path, cli: argparse.Namespace) -> Path:
    """Just the rows the trials read: each tokenizes its split, and its final scoring covers all of validation."""
    splits = samsum_shaped()
    folder.mkdir(parents=True)
    splits["train"].select(range(cli.trial_steps * cli.batch_size * 4)).to_json(folder / "train.jsonl")
    splits["validation"].select(range(min(32, cli.eval_examples))).to_json(folder / "validation.jsonl")
    return folder


def run_sweep(base: Path, data: Path, agents: int, cli: argparse.Namespace, folder: Path) -> tuple[float, int]:
    folder.mkdir(parents=True)
    sweep = {
        "program": "agent/train.py",
        "method": "grid",
        "metric": {"name": "eval/rougeL", "goal": "maximize"},
        "command": ["${env}", "${interpreter}", "-m", "agent.train", "${args}"],
        "parameters": {
            "seed": {"values": list(range(1, cli.trials + 1))},
            "model_name_or_path": {"value": str(base)},
            "dataset": {"value": str(data)},
            "target_modules": {"value": "qkvo"},
            "max_steps": {"value": cli.trial_steps},
            "eval_steps": {"value": cli.trial_steps},
            "per_device_train_batch_size": {"value": cli.batch_size},
            "eval_subset_size": {"value": 16},
            "max_new_tokens": {"value": 32},
            "output_dir": {"value": str(folder / "outputs")},
        },
    }
    (folder / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    store = str(folder / "sweeps.db")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(REPO)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cli_cmd = [sys.executable, "-m", "agent.cli"]
    created = subprocess.run(
        [*cli_cmd, "sweep", str(folder / "sweep.yaml"), "--local", "--store", store],
        cwd=folder, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    sweep_id = created.stdout.split()[3]  # "Created local sweep ID (...)"
    started = time.perf_counter()
    agent = subprocess.run(
        [*cli_cmd, "agent", sweep_id, "--store", store, "--gpus", "0", "--agents-per-gpu", str(agents),
         "--stagger", str(cli.stagger), "--log-dir", str(folder / "logs")],
        cwd=folder, env=env, capture_output=True, text=True,
    )  # fmt: skip
    wall_s = time.perf_counter() - started
    listing = [*cli_cmd, "runs", sweep_id, "--store", store, "--format", "json"]
    runs = json.loads(subprocess.run(listing, cwd=folder, env=env, capture_output=True, text=True, check=True).stdout)
    finished = sum(run["state"] == "finished" for run in runs["runs"])
    if agent.returncode != 0 or finished < cli.trials:
        print(f"  {agents} agent(s) per GPU: exit {agent.returncode}; last lines:\n{agent.stderr[-2000:]}")
    return wall_s, finished


# 3. Evaluation --------------------------------------------------------------------------------


def evaluation_table(base: Path, cli: argparse.Namespace) -> None:
    config = TrialConfig.from_params(
        {
            "model_name_or_path": str(base),
            "target_modules": "qkvo",
            "eval_batch_size": cli.eval_batch_size,
            "max_new_tokens": cli.max_new_tokens,
        }
    )
    tokenizer = load_tokenizer(config.model)
    model = add_lora(load_base_model(config.model), config.lora).to("cuda" if CUDA else "cpu")
    rows = samsum_shaped()["validation"].select(range(cli.eval_examples))

    def evaluator(cache: str | None) -> Evaluator:
        return Evaluator(tokenizer, rows["dialogue"], rows["summary"], config.data, config.eval, cache)

    print(f"\n3. evaluation: {cli.eval_examples} prompts, batch {cli.eval_batch_size}, {cli.max_new_tokens} new tokens")
    dynamic = evaluator(None)
    Evaluator(tokenizer, rows["dialogue"][:8], rows["summary"][:8], config.data, config.eval)(model)  # warm-up
    table = Table(["cache", "examples/s", "ratio", "seconds", "same predictions"])
    reference, seconds = timed(lambda: dynamic(model))
    table.add("dynamic (today)", cli.eval_examples / seconds, seconds, "-")
    static = evaluator("static")
    for name in ("static, cold (compiles on CUDA)", "static, warm"):
        measured = attempt(name, timed, lambda: static(model))
        if not measured:
            break
        result, seconds = measured
        same = sum(a == b for a, b in zip(result.predictions, reference.predictions))
        table.add(name, cli.eval_examples / seconds, seconds, f"{same}/{cli.eval_examples}")
    print(table.render(ratio_of=1), flush=True)


def attempt(name: str, work: Callable, *args):
    """One row's measurement; a row that fails is one line, and the rows after it still run."""
    try:
        return work(*args)
    except Exception as error:  # a GPU run is one shot: a compile or a kernel failing must not cost the others
        print(f"  {name}: failed: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
        return None


def timed(work: Callable):
    if CUDA:
        torch.cuda.synchronize()
    started = time.perf_counter()
    result = work()
    if CUDA:
        torch.cuda.synchronize()
    return result, time.perf_counter() - started


# Tables ---------------------------------------------------------------------------------------


class Table:
    """Rows of a name and figures; `render` adds the ratio of one figure to the first row's."""

    def __init__(self, columns: list[str]):
        self.columns = columns
        self.rows: list[list] = []

    def add(self, name: str, *figures) -> None:
        self.rows.append([name, *figures])

    def render(self, ratio_of: int, difference_of: int | None = None) -> str:
        if not self.rows:
            return "(no row measured)"
        first = self.rows[0]
        lines = ["| " + " | ".join(self.columns) + " |", "|" + " --- |" * len(self.columns)]
        for row in self.rows:
            cells = [row[0], f"{row[ratio_of]:,.1f}", f"{row[ratio_of] / first[ratio_of]:.2f}x"]
            for value in row[ratio_of + 1 :]:
                cells.append(f"{value:.3f}" if isinstance(value, float) else str(value))
            if difference_of is not None:
                cells.append(f"{row[difference_of] - first[difference_of]:+.4f}")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


if __name__ == "__main__":
    main()
