"""The offline CPU model: a tiny Llama-architecture model built by code, deterministically, with
no download. It has the module names of Llama 3.2 (`q_proj` ... `down_proj`), a byte-level BPE
tokenizer trained on the synthetic dialogues, and a chat template. It is first trained briefly as
a language model on the dialogues alone (never the summaries), so the base knows the words and
LoRA has something real to learn: writing the summary. It is saved like any Hub model and loaded
with `from_pretrained`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import shutil
from pathlib import Path

from datasets import DatasetDict

from agent.env_vars import CACHE_ENV
from agent.trial.synthetic import SPLIT_SIZES, synthetic_dialogues

# Bump when the recipe's code changes: it is part of the cache key.
RECIPE_VERSION = 1
MODEL_RECIPE = {
    "vocab_size": 1024,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "pretrain_steps": 800,
    "pretrain_batch_size": 16,
    "pretrain_learning_rate": 3e-3,
    "seed": 0,
}
SPECIAL_TOKENS = ["<|pad|>", "<|begin|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>\n"
    "{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "lora-sweep"))


def ensure_tiny_model(root: Path | None = None) -> Path:
    """The tiny model's directory, built once per recipe; concurrent agents wait for one build."""
    root = root or cache_root()
    key = hashlib.sha256(json.dumps([RECIPE_VERSION, MODEL_RECIPE, SPLIT_SIZES], sort_keys=True).encode())
    target = root / f"tiny-llama-{key.hexdigest()[:12]}"
    if (target / "config.json").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "config.json").exists():
            staging = root / f"{target.name}.building-{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            build_tiny_model(staging)
            staging.rename(target)
    return target


def build_tiny_model(out_dir: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from agent.trial.data import build_prompt

    torch.manual_seed(MODEL_RECIPE["seed"])
    splits = synthetic_dialogues()
    tokenizer = _train_tokenizer(splits)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=MODEL_RECIPE["hidden_size"],
        intermediate_size=MODEL_RECIPE["intermediate_size"],
        num_hidden_layers=MODEL_RECIPE["num_hidden_layers"],
        num_attention_heads=MODEL_RECIPE["num_attention_heads"],
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    prompts = [build_prompt(tokenizer, d) for d in list(splits["train"]["dialogue"])]
    _pretrain(model, tokenizer, prompts)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _train_tokenizer(splits: DatasetDict):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from agent.trial.data import INSTRUCTION

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=MODEL_RECIPE["vocab_size"],
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    texts = [INSTRUCTION] + [t for split in splits.values() for t in list(split["dialogue"]) + list(split["summary"])]
    bpe.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|begin|>",
        eos_token="<|end|>",
        pad_token="<|pad|>",
        additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>"],
        chat_template=CHAT_TEMPLATE,
    )


def _pretrain(model, tokenizer, texts: list[str]) -> None:
    """A short language-model pass over the dialogue prompts alone."""
    import torch
    from tqdm.auto import tqdm

    steps, batch_size = MODEL_RECIPE["pretrain_steps"], MODEL_RECIPE["pretrain_batch_size"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=MODEL_RECIPE["pretrain_learning_rate"])
    rng = random.Random(MODEL_RECIPE["seed"])
    model.train()
    for _ in tqdm(range(steps), desc="Building the tiny base model", leave=False):
        batch = tokenizer(rng.sample(texts, batch_size), add_special_tokens=False, padding=True, return_tensors="pt")
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
