"""Training throughput: length-grouped batches with dynamic padding vs padding every example to
the maximum length (the common tutorial setup: `padding="max_length"` and a random sampler).

Same tiny model, data, LoRA config, steps and batch size; only the sampler and the padding differ.
Prints the share of processed tokens that are real (not padding), real tokens/s of each, and the
ratio of real tokens/s.

    python benchmarks/training_padding.py [--steps 60] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

from agent.trial.config import SYNTHETIC_DATASET, TINY_MODEL, TrialConfig
from agent.trial.data import LABEL_PAD, PaddingCollator, load_dialogues, tokenize_train
from agent.trial.model import add_lora, load_base_model, load_tokenizer
from agent.trial.recipe import build_training_arguments

# The tutorial pads to the longest sequence its settings allow: source + target + the chat template.
TEMPLATE_TOKENS = 16


@dataclass
class PadToMaxLength:
    """The tutorial's collator: every example padded to one fixed width, counting tokens as ours does."""

    pad_token_id: int
    width: int
    real_tokens: int = 0
    padded_tokens: int = 0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = {"input_ids": [], "attention_mask": [], "labels": []}
        for f in features:
            gap = self.width - len(f["input_ids"])
            batch["input_ids"].append(f["input_ids"] + [self.pad_token_id] * gap)
            batch["attention_mask"].append(f["attention_mask"] + [0] * gap)
            batch["labels"].append(f["labels"] + [LABEL_PAD] * gap)
            self.real_tokens += len(f["input_ids"])
        self.padded_tokens += self.width * len(features)
        return {k: torch.tensor(v) for k, v in batch.items()}

    @property
    def real_token_share(self) -> float:
        return self.real_tokens / self.padded_tokens


def train(config: TrialConfig, train_set, tokenizer, grouped: bool) -> tuple[Any, float]:
    from agent.trial.trainer import ResumableTrainer

    max_length = config.data.max_source_length + config.data.max_target_length + TEMPLATE_TOKENS
    if grouped:
        collator = PaddingCollator(tokenizer.pad_token_id)
    else:
        collator = PadToMaxLength(tokenizer.pad_token_id, max_length)
    args = build_training_arguments(config, "/tmp/lora-sweep-bench", "bench")
    args.report_to, args.disable_tqdm = [], True
    if not grouped:
        args.train_sampling_strategy = "random"
    model = add_lora(load_base_model(config.model), config.lora)
    trainer = ResumableTrainer(model=model, args=args, train_dataset=train_set, data_collator=collator)
    started = time.perf_counter()
    trainer.train()
    return collator, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=8)
    cli = parser.parse_args()

    config = TrialConfig.from_params(
        {
            "model_name_or_path": TINY_MODEL,
            "dataset": SYNTHETIC_DATASET,
            "max_steps": cli.steps,
            "per_device_train_batch_size": cli.batch_size,
            "max_source_length": 128,
            "max_target_length": 32,
            "target_modules": "qkvo",
            "logging_steps": cli.steps,
        }
    )
    tokenizer = load_tokenizer(config.model)
    train_set = tokenize_train(load_dialogues(SYNTHETIC_DATASET)["train"], tokenizer, config.data)

    padded, padded_s = train(config, train_set, tokenizer, grouped=False)
    grouped, grouped_s = train(config, train_set, tokenizer, grouped=True)

    print(f"steps={cli.steps} batch_size={cli.batch_size} max_source_length=128 max_target_length=32")
    for name, collator, seconds in (("pad to max length", padded, padded_s), ("grouped, dynamic", grouped, grouped_s)):
        print(
            f"{name:18}: real-token share {collator.real_token_share:.3f}, "
            f"{collator.real_tokens / seconds:8.0f} real tokens/s"
        )
    print(f"speed-up (real tokens/s): {(grouped.real_tokens / grouped_s) / (padded.real_tokens / padded_s):.1f}x")


if __name__ == "__main__":
    main()
