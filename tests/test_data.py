"""Data loading in every supported form, prompt masking, and dynamic padding."""

import json
from pathlib import Path

import pytest

from agent.trial.config import SAMSUM_SHAPED_DATASET, SYNTHETIC_DATASET, ConfigError, DataArgs
from agent.trial.data import LABEL_PAD, PaddingCollator, build_prompt, encode_example, load_dialogues

FIXTURES = Path(__file__).parent / "fixtures"


def test_original_samsum_corpus_json_loads_with_newlines_normalized():
    splits = load_dialogues(str(FIXTURES / "samsum_corpus.json"))
    rows = list(splits["train"]) + list(splits["validation"])
    assert len(rows) == 5 and len(splits["validation"]) == 1
    assert all("\r" not in r["dialogue"] for r in rows)
    assert any(r["dialogue"].startswith("Amanda: I baked  cookies. Do you want some?\nJerry: Sure!\n") for r in rows)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_local_formats_load_from_a_directory(tmp_path, suffix):
    import pandas as pd

    rows = json.loads((FIXTURES / "samsum_corpus.json").read_text())
    frame = pd.DataFrame(rows)
    for name, part in (("train", frame[:4]), ("val", frame[4:])):
        path = tmp_path / f"{name}{suffix}"
        if suffix == ".jsonl":
            part.to_json(path, orient="records", lines=True)
        elif suffix == ".csv":
            part.to_csv(path, index=False)
        else:
            part.to_parquet(path)
    splits = load_dialogues(str(tmp_path))
    assert (len(splits["train"]), len(splits["validation"])) == (4, 1)
    assert splits["validation"][0]["summary"] == "Neville and Wyatt are getting married in June."


def test_synthetic_set_is_deterministic_and_sized():
    first, second = load_dialogues(SYNTHETIC_DATASET), load_dialogues(SYNTHETIC_DATASET)
    assert (len(first["train"]), len(first["validation"])) == (2000, 200)
    assert first["validation"][:5] == second["validation"][:5]


def test_the_samsum_shaped_set_has_samsums_sizes_utterance_groups_and_speakers():
    from agent.trial.synthetic import samsum_shaped_dialogues

    first, second = load_dialogues(SAMSUM_SHAPED_DATASET), samsum_shaped_dialogues()
    assert (len(first["train"]), len(first["validation"])) == (14732, 818)  # SAMSum's train and validation
    assert first["validation"][:5] == second["validation"][:5]
    dialogues = first["train"]["dialogue"]
    utterances = [len(d.splitlines()) for d in dialogues]
    assert (min(utterances), max(utterances)) == (3, 30)
    for low, high in ((3, 6), (7, 12), (13, 18), (19, 30)):  # uniform over the four published groups
        assert sum(low <= n <= high for n in utterances) / len(utterances) == pytest.approx(0.25, abs=0.02)
    two = sum(len({line.split(":")[0] for line in d.splitlines()}) == 2 for d in dialogues) / len(dialogues)
    assert 0.75 <= two <= 0.85  # 75% are drawn between two people; a few larger groups leave some silent


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing.json", "does not exist"),
        (lambda p: (p / "empty.jsonl").write_text("") and p / "empty.jsonl" or p / "empty.jsonl", "is empty"),
        (lambda p: (p / "list.json").write_text("[]") and p / "list.json", "has no rows"),
        (
            lambda p: (p / "cols.jsonl").write_text('{"text": "a", "label": "b"}\n') and p / "cols.jsonl",
            "has no dialogue or summary column",
        ),
    ],
)
def test_bad_dataset_files_give_one_clear_line(tmp_path, make, message):
    with pytest.raises(ConfigError) as error:
        load_dialogues(str(make(tmp_path)))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_loss_is_only_on_summary_tokens(tiny_tokenizer):
    dialogue, summary = "Anna: Are you free on Friday?\nTom: Yes.", "Anna and Tom are free on Friday."
    features = encode_example(tiny_tokenizer, dialogue, summary, DataArgs(max_source_length=64, max_target_length=64))
    prompt_ids = tiny_tokenizer(build_prompt(tiny_tokenizer, dialogue), add_special_tokens=False)["input_ids"]
    labels = features["labels"]
    assert labels[: len(prompt_ids)] == [LABEL_PAD] * len(prompt_ids)
    target = labels[len(prompt_ids) :]
    assert LABEL_PAD not in target and target[-1] == tiny_tokenizer.eos_token_id
    assert tiny_tokenizer.decode(target[:-1]) == summary
    assert features["input_ids"][len(prompt_ids) :] == target


def test_long_dialogues_are_cut_but_the_template_survives(tiny_tokenizer):
    args = DataArgs(max_source_length=8, max_target_length=4)
    features = encode_example(tiny_tokenizer, "Anna: " + "hello there " * 50, "A long summary of many words.", args)
    text = tiny_tokenizer.decode(features["input_ids"])
    assert text.startswith("<|begin|><|user|>\nSummarize this dialogue:") and "<|assistant|>" in text
    assert sum(1 for label in features["labels"] if label != LABEL_PAD) == 4


def test_collator_pads_each_batch_to_its_longest_and_counts_real_tokens():
    collator = PaddingCollator(pad_token_id=0)
    batch = collator(
        [
            {"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [-100, 6, 7]},
            {"input_ids": [5], "attention_mask": [1], "labels": [5]},
        ]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [5, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert (collator.real_tokens, collator.padded_tokens) == (4, 6)


def test_a_single_row_file_cannot_hold_out_validation(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text('{"dialogue": "A: hi", "summary": "A says hi."}\n')
    with pytest.raises(ConfigError, match="has one row"):
        load_dialogues(str(path))


def _rows(summaries: list, dialogue="A: hi\nB: hello") -> list[dict]:
    return [{"dialogue": dialogue, "summary": s} for s in summaries]


@pytest.mark.parametrize(
    "name, rows, message",
    [
        ("ints.jsonl", _rows(list(range(10))), "row 1's summary is not text but int '0'"),
        ("mixed.jsonl", _rows(["ok"] * 9 + [5]), "row 10's summary is not text but int '5'"),
        ("mixed.json", _rows(["ok"] * 9 + [["a", "b"]]), "row 10's summary is not text but list"),
        ("dict.jsonl", [{"dialogue": {"A": "hi"}, "summary": "x"}] * 4, "row 1's dialogue is not text but dict"),
        ("nulls.jsonl", _rows([None] * 10), "every row of the train split has an empty or missing"),
        # the 90/10 split leaves the one filled summary on one side: the other side is empty after cleaning
        ("blank.jsonl", _rows([""] * 9 + ["fine"]), "split has an empty or missing dialogue or summary"),
    ],
)
def test_rows_that_are_not_text_or_leave_a_split_empty_give_one_line(tmp_path, name, rows, message):
    path = tmp_path / name
    if name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        path.write_text(json.dumps(rows))
    with pytest.raises(ConfigError) as error:
        load_dialogues(str(path))
    assert message in str(error.value) and "\n" not in str(error.value)
