"""Dialogue-summary data: load it (Hub, local files, or the synthetic sets), turn it into prompts and
training features, and batch them: padded to each batch's longest, or packed without padding.

Every split has two string columns, `dialogue` and `summary`. Training features mask the prompt
with -100 so the loss is on summary tokens alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict

from agent.trial.config import SAMSUM_SHAPED_DATASET, SYNTHETIC_DATASET, ConfigError, DataArgs

INSTRUCTION = "Summarize this dialogue:"
LOCAL_FORMATS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
VALIDATION_NAMES = ("validation", "val", "valid", "dev")
HELD_OUT_SHARE = 0.1  # a single local file is split 90/10, deterministically
LABEL_PAD = -100
PROMPT_DATE = "26 Jul 2024"


def load_dialogues(dataset: str) -> DatasetDict:
    """`train` and `validation` splits with `dialogue` and `summary` columns."""
    if dataset == SYNTHETIC_DATASET:
        from agent.trial.synthetic import synthetic_dialogues

        splits = synthetic_dialogues()
    elif dataset == SAMSUM_SHAPED_DATASET:
        from agent.trial.synthetic import samsum_shaped_dialogues

        splits = samsum_shaped_dialogues()
    elif Path(dataset).exists():
        splits = _load_local(Path(dataset))
    elif dataset.startswith((".", "/", "~")) or Path(dataset).suffix in LOCAL_FORMATS:
        raise ConfigError(f"dataset file {dataset!r} does not exist: check the path")
    else:
        splits = _load_hub(dataset)
    return _checked(splits, dataset)


def _load_hub(dataset_id: str) -> DatasetDict:
    from datasets import load_dataset

    try:
        splits = load_dataset(dataset_id)
    except Exception as error:  # the Hub client raises many types; all mean "cannot load this id"
        raise ConfigError(
            f"cannot load dataset {dataset_id!r} from the Hub ({type(error).__name__}: {error}); "
            "give a reachable Hub id or a local file"
        ) from None
    validation = next((splits[n] for n in VALIDATION_NAMES if n in splits), None)
    if "train" not in splits or validation is None:
        raise ConfigError(f"dataset {dataset_id!r} needs train and validation splits, has {list(splits)}")
    return DatasetDict(train=splits["train"], validation=validation)


def _load_local(path: Path) -> DatasetDict:
    if path.is_dir():
        files = {f.stem.lower(): f for f in sorted(path.iterdir()) if f.suffix in LOCAL_FORMATS}
        validation = next((files[n] for n in VALIDATION_NAMES if n in files), None)
        if "train" not in files or validation is None:
            raise ConfigError(
                f"dataset directory {str(path)!r} needs train and validation (or val) files "
                f"in {'/'.join(LOCAL_FORMATS)}, found {sorted(f.name for f in files.values())}"
            )
        return DatasetDict(train=_read_file(files["train"]), validation=_read_file(validation))
    rows = _checked_columns(_read_file(path), str(path))
    if len(rows) < 2:
        raise ConfigError(f"dataset file {str(path)!r} has one row; a single file needs 2 or more to hold one out")
    split = rows.train_test_split(test_size=max(1, round(HELD_OUT_SHARE * len(rows))), seed=0)
    return DatasetDict(train=split["train"], validation=split["test"])


def _read_file(path: Path) -> Dataset:
    if path.suffix not in LOCAL_FORMATS:
        raise ConfigError(f"dataset file {str(path)!r}: unsupported format, use one of {', '.join(LOCAL_FORMATS)}")
    if path.stat().st_size == 0:
        raise ConfigError(f"dataset file {str(path)!r} is empty")
    rows = _parse_file(path)
    if len(rows) == 0:
        raise ConfigError(f"dataset file {str(path)!r} has no rows")
    for column in {"dialogue", "summary"} & set(rows.column_names):  # row numbers of the file, before any split
        _check_text(rows[column], column, str(path))
    return rows


def _parse_file(path: Path) -> Dataset:
    if path.suffix == ".json":
        # The original SAMSum corpus is one JSON list of {id, summary, dialogue}.
        text = path.read_text(encoding="utf-8")
        if text.lstrip().startswith("["):
            try:
                rows = json.loads(text)
            except json.JSONDecodeError as error:
                raise ConfigError(f"dataset file {str(path)!r} is not valid JSON: {error}") from None
            if not all(isinstance(row, dict) for row in rows):
                raise ConfigError(
                    f"dataset file {str(path)!r} must be a JSON list of objects with dialogue and summary"
                )
            for column in ("dialogue", "summary"):  # Arrow's own error names neither the row nor the column
                _check_text([row.get(column) for row in rows], column, str(path))
            try:
                return Dataset.from_list(rows)
            except (TypeError, ValueError) as error:
                raise ConfigError(f"cannot read dataset file {str(path)!r}: {error}") from None
    from datasets import load_dataset

    try:
        return load_dataset(LOCAL_FORMATS[path.suffix], data_files=str(path), split="train")
    except Exception as error:  # pyarrow/pandas parse errors have no common base class
        raise ConfigError(f"cannot read dataset file {str(path)!r}: {error}") from None


def _checked_columns(split: Dataset, where: str) -> Dataset:
    missing = {"dialogue", "summary"} - set(split.column_names)
    if missing:
        raise ConfigError(
            f"dataset {where!r} has no {' or '.join(sorted(missing))} column; columns found: {split.column_names}"
        )
    return split


def _check_text(values: list[Any], column: str, where: str) -> None:
    """Every value is a string (or missing, dropped later): numbers or lists are a broken file, not data."""
    for number, value in enumerate(values, start=1):
        if value is not None and not isinstance(value, str):
            raise ConfigError(
                f"dataset {where!r}: row {number}'s {column} is not text but {type(value).__name__} "
                f"{str(value)[:40]!r}; every dialogue and summary must be a string"
            )


def _checked(splits: DatasetDict, dataset: str) -> DatasetDict:
    for name, split in splits.items():
        where = f"{dataset} ({name} split)"
        _checked_columns(split, where)
        if len(split) == 0:
            raise ConfigError(f"dataset {dataset!r} has an empty {name} split")
        for column in ("dialogue", "summary"):
            _check_text(split[column], column, where)
    cleaned = DatasetDict(
        {name: split.select_columns(["dialogue", "summary"]).map(_normalized) for name, split in splits.items()}
    ).filter(lambda row: bool(row["dialogue"]) and bool(row["summary"]))
    for name, split in cleaned.items():  # checked after the filter: training on nothing "succeeds" silently
        if len(split) == 0:
            raise ConfigError(
                f"dataset {dataset!r}: every row of the {name} split has an empty or missing dialogue or summary; "
                "fill them in or give another dataset"
            )
    return cleaned


def _normalized(row: dict[str, Any]) -> dict[str, str]:
    # SAMSum's corpus JSON has \r\n line endings; None appears in a few rows of some mirrors.
    return {k: (row[k] or "").replace("\r\n", "\n").strip() for k in ("dialogue", "summary")}


def build_prompt(tokenizer: Any, dialogue: str) -> str:
    """The prompt text, ending where the summary begins. Chat template when the tokenizer has one."""
    request = f"{INSTRUCTION}\n{dialogue}"
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": request}],
            tokenize=False,
            add_generation_prompt=True,
            # Llama 3's template writes today's date into the system header; a fixed one keeps every
            # prompt, and so every run of a sweep that spans midnight, the same.
            date_string=PROMPT_DATE,
        )
    return f"{tokenizer.bos_token or ''}{request}\nSummary:"


def truncate_dialogue(tokenizer: Any, dialogue: str, max_tokens: int) -> str:
    """Cut the dialogue itself, never the instruction or the template around it."""
    ids = tokenizer(dialogue, add_special_tokens=False)["input_ids"]
    return dialogue if len(ids) <= max_tokens else tokenizer.decode(ids[:max_tokens])


def encode_prompt(tokenizer: Any, dialogue: str, args: DataArgs) -> list[int]:
    prompt = build_prompt(tokenizer, truncate_dialogue(tokenizer, dialogue, args.max_source_length))
    return tokenizer(prompt, add_special_tokens=False)["input_ids"]


def encode_example(tokenizer: Any, dialogue: str, summary: str, args: DataArgs) -> dict[str, list[int]]:
    """Prompt + summary + end-of-turn; labels are -100 over the prompt."""
    prompt_ids = encode_prompt(tokenizer, dialogue, args)
    summary_ids = tokenizer(summary, add_special_tokens=False)["input_ids"][: args.max_target_length - 1]
    target_ids = summary_ids + [tokenizer.eos_token_id]
    return {
        "input_ids": prompt_ids + target_ids,
        "attention_mask": [1] * (len(prompt_ids) + len(target_ids)),
        "labels": [LABEL_PAD] * len(prompt_ids) + target_ids,
    }


def tokenize_train(split: Dataset, tokenizer: Any, args: DataArgs) -> Dataset:
    def encode(row: dict[str, str]) -> dict[str, Any]:
        features = encode_example(tokenizer, row["dialogue"], row["summary"], args)
        return {**features, "length": len(features["input_ids"])}

    return split.map(encode, remove_columns=split.column_names, desc="Tokenizing")


@dataclass
class PaddingCollator:
    """Pads each batch to its own longest example (right side) and counts real vs padded tokens.

    With length-grouped batches, nearly every processed token is real; the counts make that
    measurable (`real_token_share`) and give tokens/s.
    """

    pad_token_id: int
    real_tokens: int = 0
    padded_tokens: int = 0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        batch = {"input_ids": [], "attention_mask": [], "labels": []}
        for f in features:
            gap = width - len(f["input_ids"])
            batch["input_ids"].append(f["input_ids"] + [self.pad_token_id] * gap)
            batch["attention_mask"].append(f["attention_mask"] + [0] * gap)
            batch["labels"].append(f["labels"] + [LABEL_PAD] * gap)
            self.real_tokens += len(f["input_ids"])
        self.padded_tokens += width * len(features)
        return {k: torch.tensor(v) for k, v in batch.items()}

    @property
    def real_token_share(self) -> float:
        return self.real_tokens / self.padded_tokens if self.padded_tokens else 0.0


@dataclass
class PackingCollator:
    """Concatenates each batch's examples into one row, without padding: transformers'
    `DataCollatorWithFlattening`, counting tokens as `PaddingCollator` does (every token is real).

    Position ids restart at 0 with each example; from them transformers' SDPA and eager attention
    build a mask that keeps examples apart, and flash-attention its per-example lengths. Labels keep
    their -100 prompt mask, and each example's first label is -100, so no token is trained to
    predict the next example's first token. The model must run without a KV cache in training
    (`model.load_base_model` sees to it): given one, SDPA and eager ignore the position ids and let
    every token attend across examples.
    """

    real_tokens: int = 0
    padded_tokens: int = 0

    def __post_init__(self) -> None:
        from transformers import DataCollatorWithFlattening

        self.flatten = DataCollatorWithFlattening(return_tensors="pt")

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        tokens = sum(len(f["input_ids"]) for f in features)
        self.real_tokens += tokens
        self.padded_tokens += tokens
        return self.flatten([{"input_ids": f["input_ids"], "labels": f["labels"]} for f in features])

    @property
    def real_token_share(self) -> float:
        return 1.0 if self.padded_tokens else 0.0


def build_collator(padding_free: bool, pad_token_id: int) -> PaddingCollator | PackingCollator:
    """The training collator: packed (padding_free) or padded to each batch's longest example."""
    return PackingCollator() if padding_free else PaddingCollator(pad_token_id=pad_token_id)
