"""Padding-free packing: a batch packed into one row trains exactly as the same batch padded.

The proof runs the tiny model with a LoRA adapter, as a trial loads it (`load_base_model`, so with
the attention implementation and cache setting training uses on this CPU), on a pair of examples
of different lengths. If attention crossed from one example into the next, the second example's
logits and so the loss would change: the same row without restarting position ids shows by how much.
"""

from __future__ import annotations

import pytest
import torch

from agent.trial.config import TINY_MODEL, TrialConfig
from agent.trial.data import PackingCollator, PaddingCollator, build_collator, encode_example
from agent.trial.model import add_lora, load_base_model

PAIR = [
    (
        "Anna: Are you free on Monday?\nTom: Yes. Let's play tennis at the park at 5 pm.",
        "Anna and Tom will play tennis.",
    ),
    ("Kate: Have you seen my keys?\nMark: In the car.", "Kate's keys are in the car."),
]


@pytest.fixture(scope="module")
def model_and_features(tiny_model_dir, tiny_tokenizer):
    config = TrialConfig.from_params({"model_name_or_path": TINY_MODEL, "target_modules": "qkvo", "lora_dropout": 0.0})
    torch.manual_seed(0)
    model = add_lora(load_base_model(config.model), config.lora)
    for name, p in model.named_parameters():  # a trained-looking adapter: lora_B starts at zero, which hides a lot
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    features = [encode_example(tiny_tokenizer, d, s, config.data) for d, s in PAIR]
    assert len(features[0]["input_ids"]) != len(features[1]["input_ids"])
    return model, features


def loss_and_adapter_grads(model, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), grads


def test_a_packed_batch_gives_the_padded_batchs_loss_and_lora_gradients(model_and_features):
    model, features = model_and_features
    padded = PaddingCollator(pad_token_id=0)(features)
    packed = PackingCollator()(features)
    assert packed["input_ids"].shape == (1, padded["attention_mask"].sum())  # one row, no padding
    assert "attention_mask" not in packed

    padded_loss, padded_grads = loss_and_adapter_grads(model, padded)
    packed_loss, packed_grads = loss_and_adapter_grads(model, packed)

    assert packed_loss == pytest.approx(padded_loss.item(), rel=1e-5)
    assert padded_grads.keys() == packed_grads.keys() and len(packed_grads) > 0
    for name, grad in packed_grads.items():
        torch.testing.assert_close(grad, padded_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_no_attention_crosses_from_one_packed_example_into_the_next(model_and_features):
    model, features = model_and_features
    packed = PackingCollator()(features)
    first = len(features[0]["input_ids"])
    with torch.no_grad():
        alone = model(input_ids=torch.tensor([features[1]["input_ids"]])).logits[0]
        in_row = model(**packed).logits[0, first:]
        # The same row read as one long sequence: the second example attends to the first.
        crossing = model(input_ids=packed["input_ids"], labels=packed["labels"])
        separate = model(**packed)

    torch.testing.assert_close(in_row, alone, rtol=1e-4, atol=1e-5)
    assert abs(crossing.loss - separate.loss) > 1e-3  # the pair is one where crossing would show


def test_the_trial_packs_or_pads_as_padding_free_says():
    assert isinstance(build_collator(True, pad_token_id=0), PackingCollator)
    assert isinstance(build_collator(False, pad_token_id=0), PaddingCollator)
    assert TrialConfig.from_params({}).device.padding_free  # the default: packed
