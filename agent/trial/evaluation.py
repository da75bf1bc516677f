"""Generation-based evaluation, the hot path of every trial.

Prompts are tokenized once, sorted by length so each batch pads little, left-padded so every
sequence ends where generation starts, and decoded greedily with the KV cache under inference mode,
stopping at end-of-turn. Never one example at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from agent.trial.config import DataArgs, EvalArgs
from agent.trial.data import encode_prompt
from agent.trial.rouge import aggregate, score_pairs


def stop_token_ids(tokenizer: Any, model: Any) -> list[int]:
    """End-of-sequence and end-of-turn ids (Llama 3 Instruct stops on <|eot_id|> as well)."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return sorted(i for i in ids if i is not None)


def left_pad(sequences: Sequence[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq) :] = torch.tensor(seq)
        mask[row, width - len(seq) :] = 1
    return {"input_ids": ids, "attention_mask": mask}


@torch.inference_mode()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[list[int]],
    max_new_tokens: int,
    batch_size: int,
    cache_implementation: str | None = None,
    between_batches: Callable[[int, int], None] | None = None,
) -> list[str]:
    """Greedy summaries for tokenized prompts, in the prompts' order.

    `between_batches(done, total)`, when given, is called before each batch: the trial program's
    safe point to answer a preemption during a long scoring.

    `cache_implementation="static"` preallocates the KV cache, and on CUDA lets transformers compile
    the decoding step; benchmarks/gpu_sweep.py measures it against the default dynamic cache.
    """
    was_training = model.training
    model.eval()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
    stops = stop_token_ids(tokenizer, model)
    texts: dict[int, str] = {}
    batches = range(0, len(order), batch_size)
    for done, start in enumerate(batches):
        if between_batches is not None:
            between_batches(done, len(batches))
        chunk = order[start : start + batch_size]
        batch = {
            k: v.to(model.device) for k, v in left_pad([prompts[i] for i in chunk], tokenizer.pad_token_id).items()
        }
        out = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            use_cache=True,
            eos_token_id=stops,
            pad_token_id=tokenizer.pad_token_id,
            **({"cache_implementation": cache_implementation} if cache_implementation else {}),
        )
        new_tokens = out[:, batch["input_ids"].shape[1] :]
        for i, text in zip(chunk, tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
            texts[i] = text.strip()
    model.train(was_training)
    return [texts[i] for i in range(len(prompts))]


@dataclass(frozen=True)
class EvalResult:
    metrics: dict[str, float]
    """rouge1, rouge2, rougeL, rougeLsum (x100) and gen_len (mean generated words)."""
    predictions: list[str]
    rouge_l: list[float]
    """Per-example ROUGE-L F-measure x100, for the sample-predictions table."""


class Evaluator:
    """Scores one fixed set of dialogues; tokenizes them once, up front."""

    def __init__(
        self,
        tokenizer: Any,
        dialogues: Sequence[str],
        references: Sequence[str],
        data: DataArgs,
        args: EvalArgs,
        cache_implementation: str | None = None,
    ):
        self.tokenizer = tokenizer
        self.cache_implementation = cache_implementation
        self.dialogues = list(dialogues)
        self.references = list(references)
        self.args = args
        self.prompts = [encode_prompt(tokenizer, d, data) for d in self.dialogues]

    def __call__(self, model: Any, between_batches: Callable[[int, int], None] | None = None) -> EvalResult:
        predictions = generate(
            model,
            self.tokenizer,
            self.prompts,
            self.args.max_new_tokens,
            self.args.eval_batch_size,
            self.cache_implementation,
            between_batches,
        )
        scores = score_pairs(predictions, self.references)
        metrics = aggregate(scores)
        metrics["gen_len"] = sum(len(p.split()) for p in predictions) / len(predictions)
        return EvalResult(metrics, predictions, [100 * s["rougeL"].fmeasure for s in scores])
