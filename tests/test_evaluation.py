"""Batched generation must give exactly what one-example-at-a-time generation gives."""

from agent.trial.config import SYNTHETIC_DATASET
from agent.trial.data import load_dialogues
from agent.trial.evaluation import generate, left_pad


def test_left_pad_aligns_sequences_at_the_right():
    batch = left_pad([[7, 8, 9], [5]], pad_id=0)
    assert batch["input_ids"].tolist() == [[7, 8, 9], [0, 0, 5]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]


def test_batched_generation_equals_one_at_a_time(tiny_model_dir, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    dialogues = load_dialogues(SYNTHETIC_DATASET)["validation"]["dialogue"][:10]
    # Dialogue openings of different lengths: the base model continues them with real text.
    prompts = [tiny_tokenizer(d, add_special_tokens=False)["input_ids"][: 6 + 3 * i] for i, d in enumerate(dialogues)]
    batched = generate(model, tiny_tokenizer, prompts, max_new_tokens=16, batch_size=4)
    single = [generate(model, tiny_tokenizer, [p], max_new_tokens=16, batch_size=1)[0] for p in prompts]
    assert batched == single
    assert all(batched) and len(set(batched)) > 1  # real, varied text, not empty strings


def test_a_static_cache_predicts_what_the_dynamic_one_does_on_the_trials_model(tiny_model_dir, tiny_tokenizer):
    from agent.trial.config import TINY_MODEL, TrialConfig
    from agent.trial.model import load_base_model

    model = load_base_model(TrialConfig.from_params({"model_name_or_path": TINY_MODEL}).model)  # no cache in training
    dialogues = load_dialogues(SYNTHETIC_DATASET)["validation"]["dialogue"][:6]
    prompts = [tiny_tokenizer(d, add_special_tokens=False)["input_ids"][: 6 + 3 * i] for i, d in enumerate(dialogues)]
    dynamic = generate(model, tiny_tokenizer, prompts, max_new_tokens=12, batch_size=3)
    static = generate(model, tiny_tokenizer, prompts, max_new_tokens=12, batch_size=3, cache_implementation="static")
    assert static == dynamic and all(dynamic)


def test_a_preemption_during_the_final_scoring_ends_it_at_the_next_batch_unless_the_rest_fits(
    tiny_model_dir, tiny_tokenizer
):
    import os
    import signal

    import pytest
    from transformers import AutoModelForCausalLM

    from agent.trial.recipe import scoring_check
    from agent.trial.stopping import Preempted, StopRequest

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompts = [[5, 6, 7, 8 + i] for i in range(6)]
    stop = StopRequest()  # no supervisor's notice: a SIGTERM is a preemption
    batches_seen = []

    def preempted_after_two(done: int, total: int) -> None:
        batches_seen.append(done)
        if done == 2 and stop.kind is None:
            os.kill(os.getpid(), signal.SIGTERM)  # a SIGTERM landing mid-scoring
        check(done, total)

    check = scoring_check(stop, save_s=0.5, grace_s=0.0)
    with stop.latch, pytest.raises(Preempted):
        generate(model, tiny_tokenizer, prompts, max_new_tokens=4, batch_size=2, between_batches=preempted_after_two)
    assert batches_seen == [0, 1, 2]  # the third batch never ran

    stop, batches_seen = StopRequest(), []
    check = scoring_check(stop, save_s=0.5, grace_s=60.0)  # the rest fits the grace: scoring goes on
    with stop.latch:
        texts = generate(
            model, tiny_tokenizer, prompts, max_new_tokens=4, batch_size=2, between_batches=preempted_after_two
        )
    assert stop.preempted and batches_seen == [0, 1, 2] and len(texts) == 6
