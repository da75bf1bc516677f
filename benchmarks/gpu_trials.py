"""LoRA trials of a Llama-3.2-1B-shaped model on one GPU: training tokens/s, peak memory and
evaluation examples/s for lora_r 8 and 32, each on q/v and on all four attention projections.

Each configuration runs the trial program's own pieces, in process, as a trial does: the model
loaded with `from_pretrained` from a local directory, the LoRA adapter, length-grouped training
with the HF Trainer for `--steps` steps, then the batched ROUGE evaluation on `--examples`
validation dialogues. W&B logging is off: it would time the network, not the GPU.

Where no weights can be fetched, the base is a Llama-3.2-1B-shaped config (16 layers, 2048 wide,
grouped-query attention, 128,256-token vocabulary, tied embeddings) with random weights, in bf16,
saved with the tiny model's tokenizer. A random base never emits end-of-turn, so every summary runs
the full `max_new_tokens`: evaluation figures are the worst case. The data is the synthetic
dialogue set. Baseline: r 8 on q/v; every row also prints its ratio to it.

    python benchmarks/gpu_trials.py [--model-dir DIR] [--steps 60] [--examples 128]
    python benchmarks/gpu_trials.py --shape tiny --steps 4 --examples 8   # a check of the script on CPU
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from agent.trial.config import SYNTHETIC_DATASET, TINY_MODEL, TrialConfig
from agent.trial.data import PaddingCollator, load_dialogues, tokenize_train
from agent.trial.evaluation import Evaluator
from agent.trial.model import add_lora, load_base_model, load_tokenizer, resolve_model_path
from agent.trial.recipe import build_training_arguments

# Llama-3.2-1B's published config.json, less what only pretrained weights need.
LLAMA_3_2_1B = dict(
    vocab_size=128256,
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=64,
    max_position_embeddings=131072,
    rope_theta=500000.0,
    rope_scaling={
        "rope_type": "llama3",
        "factor": 32.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
)
TINY_SHAPE = dict(LLAMA_3_2_1B, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, vocab_size=2048)  # fmt: skip
CONFIGURATIONS = [(8, "qv"), (8, "qkvo"), (32, "qv"), (32, "qkvo")]


@dataclass(frozen=True)
class Measured:
    lora_r: int
    target_modules: str
    trainable_params: int
    train_tokens_per_s: float
    peak_memory_gb: float
    eval_examples_per_s: float


def build_random_base(shape: dict, out_dir: Path) -> Path:
    """A Llama-architecture model of `shape` with random bf16 weights, and the tiny model's tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(TINY_MODEL))
    config = LlamaConfig(
        **shape,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="bfloat16",
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def measure(model_dir: Path, lora_r: int, target_modules: str, cli: argparse.Namespace, work: Path) -> Measured:
    from transformers import set_seed

    from agent.trial.trainer import ResumableTrainer

    config = TrialConfig.from_params(
        {
            "model_name_or_path": str(model_dir),
            "dataset": SYNTHETIC_DATASET,
            "lora_r": lora_r,
            "lora_alpha": 2 * lora_r,
            "target_modules": target_modules,
            "max_steps": cli.steps,
            "per_device_train_batch_size": cli.batch_size,
            "logging_steps": cli.steps,
        }
    )
    set_seed(config.train.seed)
    splits = load_dialogues(SYNTHETIC_DATASET)
    tokenizer = load_tokenizer(config.model)
    model = add_lora(load_base_model(config.model), config.lora)
    trainable, _ = model.get_nb_trainable_parameters()
    train_set = tokenize_train(splits["train"], tokenizer, config.data)
    args = build_training_arguments(config, work / f"r{lora_r}-{target_modules}", "bench")
    args.report_to, args.disable_tqdm = [], True
    collator = PaddingCollator(tokenizer.pad_token_id)
    trainer = ResumableTrainer(model=model, args=args, train_dataset=train_set, data_collator=collator)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0

    rows = splits["validation"].select(range(cli.examples))
    evaluator = Evaluator(tokenizer, rows["dialogue"], rows["summary"], config.data, config.eval)
    evaluator(model)  # warm-up: kernels and the allocator, as every evaluation after the first sees them
    started = time.perf_counter()
    evaluator(model)
    eval_s = time.perf_counter() - started
    del trainer, model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return Measured(lora_r, target_modules, trainable, collator.real_tokens / train_s, peak, cli.examples / eval_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, help="a local Llama checkpoint; default: random 1B-shaped weights")
    parser.add_argument("--shape", choices=["1b", "tiny"], default="1b")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--examples", type=int, default=128)
    cli = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lora-sweep-gpu-"))
    try:
        model_dir = cli.model_dir or build_random_base(LLAMA_3_2_1B if cli.shape == "1b" else TINY_SHAPE, work / "base")
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
        print(f"device: {device}; base: {cli.model_dir or f'random {cli.shape} Llama, bf16'}; steps={cli.steps} "
              f"batch={cli.batch_size} eval examples={cli.examples}")  # fmt: skip
        # A short first trial pays for CUDA's start-up and kernel choices, so the baseline does not.
        measure(model_dir, *CONFIGURATIONS[0], argparse.Namespace(**{**vars(cli), "steps": 5, "examples": 8}), work)
        results = [measure(model_dir, r, modules, cli, work) for r, modules in CONFIGURATIONS]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    baseline = results[0]
    print(f"{'r':>3} {'modules':8} {'trainable':>11} {'train tok/s':>12} {'ratio':>6} {'peak GiB':>9} "
          f"{'eval ex/s':>10} {'ratio':>6}")  # fmt: skip
    for row in results:
        print(
            f"{row.lora_r:>3} {row.target_modules:8} {row.trainable_params:>11,} {row.train_tokens_per_s:>12,.0f} "
            f"{row.train_tokens_per_s / baseline.train_tokens_per_s:>6.2f} {row.peak_memory_gb:>9.2f} "
            f"{row.eval_examples_per_s:>10.1f} {row.eval_examples_per_s / baseline.eval_examples_per_s:>6.2f}"
        )


if __name__ == "__main__":
    main()
