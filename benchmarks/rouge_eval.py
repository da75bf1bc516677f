"""ROUGE evaluation throughput: our batched generation vs the one-example-at-a-time loop.

Same model (the tiny built-in Llama with an adapter trained as in the smoke sweep, 200 steps, so
summaries stop at end-of-turn as real ones do), same validation prompts, same greedy decoding,
same max_new_tokens, same ROUGE scoring. The baseline is the loop of typical tutorials: tokenize one prompt, generate,
decode, next. Prints examples/s of each and their ratio.

    python benchmarks/rouge_eval.py [--examples 128] [--max-new-tokens 48] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import time

import torch

from agent.trial.config import SYNTHETIC_DATASET, TINY_MODEL, TrialConfig
from agent.trial.data import PaddingCollator, build_prompt, load_dialogues, tokenize_train
from agent.trial.evaluation import Evaluator, stop_token_ids
from agent.trial.model import add_lora, load_base_model, load_tokenizer
from agent.trial.recipe import build_training_arguments
from agent.trial.rouge import aggregate, score_pairs


def train_briefly(config: TrialConfig, splits, tokenizer):
    from transformers import set_seed

    from agent.trial.trainer import ResumableTrainer

    set_seed(config.train.seed)
    model = add_lora(load_base_model(config.model), config.lora)
    args = build_training_arguments(config, "/tmp/lora-sweep-bench", "bench")
    args.report_to, args.disable_tqdm = [], True
    train_set = tokenize_train(splits["train"].select(range(1600)), tokenizer, config.data)
    ResumableTrainer(
        model=model, args=args, train_dataset=train_set, data_collator=PaddingCollator(tokenizer.pad_token_id)
    ).train()
    return model.eval()


@torch.inference_mode()
def one_at_a_time(model, tokenizer, dialogues, max_new_tokens) -> list[str]:
    predictions = []
    for dialogue in dialogues:
        inputs = tokenizer(build_prompt(tokenizer, dialogue), add_special_tokens=False, return_tensors="pt")
        out = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=stop_token_ids(tokenizer, model),
            pad_token_id=tokenizer.pad_token_id,
        )
        predictions.append(tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip())
    return predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=128)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=32)
    cli = parser.parse_args()

    config = TrialConfig.from_params(
        {
            "model_name_or_path": TINY_MODEL,
            "dataset": SYNTHETIC_DATASET,
            "max_steps": 200,
            "learning_rate": 1e-3,
            "target_modules": "qkvo",
            "max_new_tokens": cli.max_new_tokens,
            "eval_batch_size": cli.batch_size,
        }
    )
    splits = load_dialogues(SYNTHETIC_DATASET)
    tokenizer = load_tokenizer(config.model)
    model = train_briefly(config, splits, tokenizer)
    rows = splits["validation"].select(range(cli.examples))
    dialogues, references = list(rows["dialogue"]), list(rows["summary"])

    started = time.perf_counter()
    baseline_scores = aggregate(score_pairs(one_at_a_time(model, tokenizer, dialogues, cli.max_new_tokens), references))
    baseline_s = time.perf_counter() - started

    started = time.perf_counter()
    ours = Evaluator(tokenizer, dialogues, references, config.data, config.eval)(model)  # tokenizing included
    ours_s = time.perf_counter() - started

    print(
        f"examples={cli.examples} max_new_tokens={cli.max_new_tokens} batch_size={cli.batch_size} "
        f"threads={torch.get_num_threads()}"
    )
    print(f"one at a time : {cli.examples / baseline_s:7.1f} examples/s  rougeL={baseline_scores['rougeL']:.2f}")
    print(f"batched       : {cli.examples / ours_s:7.1f} examples/s  rougeL={ours.metrics['rougeL']:.2f}")
    print(f"speed-up      : {baseline_s / ours_s:.1f}x")


if __name__ == "__main__":
    main()
