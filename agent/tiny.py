"""The offline CPU default: a synthetic dialogue-summary set and a tiny Llama-architecture model.

Everything here is built by code, deterministically, with no download. The tiny model has the
module names of Llama 3.2 (`q_proj` ... `down_proj`), a byte-level BPE tokenizer trained on the
synthetic dialogues, and a chat template. It is first trained briefly as a language model on the
dialogues alone (never the summaries), so the base knows the words and LoRA has something real
to learn: writing the summary. It is saved like any Hub model and loaded with `from_pretrained`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import shutil
from pathlib import Path

from datasets import Dataset, DatasetDict

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
SPLIT_SIZES = {"train": 2000, "validation": 200}
SPECIAL_TOKENS = ["<|pad|>", "<|begin|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>\n"
    "{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

NAMES = [
    "Anna", "Tom", "Maria", "John", "Kate", "Peter", "Lucy", "Mark", "Emma", "Jack", "Olivia", "Sam",
    "Sophie", "Dan", "Laura", "Mike", "Julia", "Chris", "Nina", "Paul", "Eva", "Greg", "Hannah", "Leo",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
TIMES = ["9 am", "10 am", "11 am", "noon", "1 pm", "3 pm", "5 pm", "6 pm", "7 pm", "8 pm"]
ACTIVITIES = {
    "watch a movie": "cinema", "have lunch": "bistro", "play tennis": "park", "get coffee": "cafe",
    "study": "library", "go swimming": "pool", "see the exhibition": "museum", "have dinner": "restaurant",
    "go shopping": "mall", "play football": "stadium", "go running": "beach", "listen to jazz": "club",
}
EVENTS = ["party", "barbecue", "picnic", "birthday dinner", "game night", "housewarming"]
ITEMS = ["some drinks", "a salad", "the speakers", "a cake", "extra chairs", "the board games", "some snacks", "ice"]
REASONS = ["my car broke down", "I have a fever", "my boss needs me at work", "my flight was delayed",
           "my sister is visiting", "I have an exam"]
OBJECTS = ["keys", "phone", "wallet", "umbrella", "laptop", "glasses", "charger", "notebook"]
ROOMS = ["kitchen", "car", "office", "living room", "bathroom", "garage", "hallway", "bedroom"]
SMALL_TALK = [
    ("How are you?", "Fine, thanks. And you?"),
    ("Long time no see!", "I know, it has been ages."),
    ("Did you see the game yesterday?", "Yes, what a match!"),
    ("Busy week?", "Very, but it is almost over."),
]


def synthetic_dialogues() -> DatasetDict:
    """Deterministic SAMSum-like splits: chatty dialogues whose summaries need the key facts."""
    rng = random.Random(1234)
    rows = [_dialogue(rng) for _ in range(sum(SPLIT_SIZES.values()))]
    n_train = SPLIT_SIZES["train"]
    return DatasetDict(train=Dataset.from_list(rows[:n_train]), validation=Dataset.from_list(rows[n_train:]))


def _dialogue(rng: random.Random) -> dict[str, str]:
    a, b = rng.sample(NAMES, 2)
    kind = rng.randrange(4)
    if kind == 0:
        activity = rng.choice(list(ACTIVITIES))
        place, day, time = ACTIVITIES[activity], rng.choice(DAYS), rng.choice(TIMES)
        lines = [(a, f"Hi {b}! Are you free on {day}?"), (b, "I think so. What do you have in mind?"),
                 (a, f"Let's {activity} at the {place}. Is {time} okay?"), (b, "Perfect, see you there.")]
        summary = f"{a} and {b} will {activity} at the {place} on {day} at {time}."
    elif kind == 1:
        event, item, day = rng.choice(EVENTS), rng.choice(ITEMS), rng.choice(DAYS)
        lines = [(a, f"Are you coming to my {event} on {day}?"), (b, "Of course! Should I bring anything?"),
                 (a, f"Could you bring {item}?"), (b, f"Sure, I will bring {item}.")]
        summary = f"{b} will bring {item} to {a}'s {event} on {day}."
    elif kind == 2:
        activity = rng.choice(list(ACTIVITIES))
        place, day, later, reason = ACTIVITIES[activity], *rng.sample(DAYS, 2), rng.choice(REASONS)
        lines = [(a, f"{b}, I am sorry, I can't come to the {place} on {day}."), (b, "Oh no, what happened?"),
                 (a, f"{reason.capitalize()}. Can we go on {later} instead?"), (b, f"No problem, {later} works for me.")]
        summary = f"{a} can't go to the {place} on {day}. {a} and {b} will go on {later} instead."
    else:
        thing, room = rng.choice(OBJECTS), rng.choice(ROOMS)
        lines = [(a, f"Have you seen my {thing}?"), (b, f"I think you left your {thing} in the {room}."),
                 (a, "Thanks, I will check there."), (b, "Let me know if you find it.")]
        summary = f"{a} is looking for the {thing}. {b} thinks it is in the {room}."
    if rng.random() < 0.5:  # small talk that a good summary leaves out
        opener, reply = rng.choice(SMALL_TALK)
        lines = [(a, opener), (b, reply)] + lines
    return {"dialogue": "\n".join(f"{who}: {text}" for who, text in lines), "summary": summary}


def cache_root() -> Path:
    return Path(os.environ.get("LORA_SWEEP_CACHE", Path.home() / ".cache" / "lora-sweep"))


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

    from agent.data import build_prompt

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

    from agent.data import INSTRUCTION

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
