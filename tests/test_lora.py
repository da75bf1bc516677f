"""LoRA wiring: swept values reach peft and transformers, and training touches the adapter only."""

import dataclasses

import pytest
import torch

from agent.trial.config import SYNTHETIC_DATASET, TINY_MODEL, LoraArgs, TrainArgs, TrialConfig
from agent.trial.model import add_lora, build_lora_config, load_base_model, load_tokenizer
from agent.trial.recipe import build_training_arguments

# Every trial parameter of these sections and the library attribute that must carry it.
TRAINING_ARGUMENTS = {
    "learning_rate": "learning_rate",
    "num_train_epochs": "num_train_epochs",
    "max_steps": "max_steps",
    "per_device_train_batch_size": "per_device_train_batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "warmup_ratio": "warmup_steps",
    "weight_decay": "weight_decay",
    "logging_steps": "logging_steps",
    "seed": "seed",
}
LORA_CONFIG = {"lora_r": "r", "lora_alpha": "lora_alpha", "lora_dropout": "lora_dropout"}

NON_DEFAULT = {
    "learning_rate": 3.3e-5,
    "num_train_epochs": 2.5,
    "max_steps": 77,
    "per_device_train_batch_size": 3,
    "gradient_accumulation_steps": 5,
    "warmup_ratio": 0.2,
    "weight_decay": 0.01,
    "logging_steps": 7,
    "seed": 1234,
    "lora_r": 12,
    "lora_alpha": 24,
    "lora_dropout": 0.15,
    "target_modules": "qkvo",
}


def test_every_training_parameter_reaches_training_arguments(tmp_path):
    assert set(TRAINING_ARGUMENTS) | {"output_dir"} == {f.name for f in dataclasses.fields(TrainArgs)}
    config = TrialConfig.from_params(NON_DEFAULT)
    args = build_training_arguments(config, tmp_path / "run", "run-name")
    for ours, theirs in TRAINING_ARGUMENTS.items():
        assert getattr(args, theirs) == getattr(config.train, ours), ours
    assert args.output_dir == str(tmp_path / "run")
    assert args.report_to == []  # LogTrainingToWandb logs instead: WandbCallback writes over the trial config


def test_warmup_ratio_warms_up_that_share_of_the_steps(tmp_path):
    # It travels as a fractional `warmup_steps`, which transformers 5 reads as a share of the total.
    args = build_training_arguments(TrialConfig.from_params({"warmup_ratio": 0.2}), tmp_path, "warmup")
    assert args.get_warmup_steps(100) == 20


def test_every_lora_parameter_reaches_lora_config():
    assert set(LORA_CONFIG) | {"target_modules"} == {f.name for f in dataclasses.fields(LoraArgs)}
    config = TrialConfig.from_params(NON_DEFAULT)
    lora = build_lora_config(config.lora)
    for ours, theirs in LORA_CONFIG.items():
        assert getattr(lora, theirs) == getattr(config.lora, ours), ours
    assert lora.target_modules == {"q_proj", "k_proj", "v_proj", "o_proj"}


def test_unknown_target_module_names_the_layers_that_exist(tiny_model_dir):
    from agent.trial.config import ConfigError

    config = TrialConfig.from_params({"model_name_or_path": TINY_MODEL, "target_modules": "q_proj,qq_proj"})
    with pytest.raises(ConfigError, match="no linear layer named qq_proj in this model; .* k_proj"):
        add_lora(load_base_model(config.model), config.lora)


def test_training_changes_adapter_weights_and_never_base_weights(tiny_model_dir, tmp_path):
    from transformers import Trainer

    from agent.trial.data import PaddingCollator, load_dialogues, tokenize_train

    config = TrialConfig.from_params(
        {
            "model_name_or_path": TINY_MODEL,
            "target_modules": "qkvo",
            "max_steps": 6,
            "learning_rate": 1e-2,
            "warmup_ratio": 0.0,
            "per_device_train_batch_size": 4,
        }
    )
    tokenizer = load_tokenizer(config.model)
    model = add_lora(load_base_model(config.model), config.lora)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    train_set = tokenize_train(load_dialogues(SYNTHETIC_DATASET)["train"].select(range(32)), tokenizer, config.data)
    args = build_training_arguments(config, tmp_path, "lora-invariant")
    args.report_to = []  # this test checks weights, not logging
    Trainer(
        model=model, args=args, train_dataset=train_set, data_collator=PaddingCollator(tokenizer.pad_token_id)
    ).train()

    adapter = [n for n, _ in model.named_parameters() if "lora_" in n]
    assert len(adapter) == 4 * 2 * 4  # 4 layers x (A, B) x q, k, v, o
    for name, p in model.named_parameters():
        if name in adapter:
            assert not torch.equal(p, before[name]), f"adapter weight {name} did not change"
        else:
            assert torch.equal(p, before[name]), f"base weight {name} changed"


def test_a_run_resumed_in_its_second_epoch_trains_on_the_batches_the_uninterrupted_run_did(tiny_model_dir, tmp_path):
    """A relaunch resumes from a checkpoint in the middle of an epoch that is not the first: it must
    replay that epoch's batch order, skip the batches already trained and end with the same weights."""
    import shutil

    from transformers import set_seed

    from agent.trial.data import PaddingCollator, load_dialogues, tokenize_train
    from agent.trial.trainer import ResumableTrainer

    config = TrialConfig.from_params(
        {
            "model_name_or_path": TINY_MODEL,
            "max_steps": 16,
            "eval_steps": 4,  # a checkpoint every 4 steps
            "learning_rate": 1e-2,
            "per_device_train_batch_size": 4,
        }
    )
    tokenizer = load_tokenizer(config.model)
    train_set = tokenize_train(load_dialogues(SYNTHETIC_DATASET)["train"].select(range(24)), tokenizer, config.data)

    def trainer(folder):  # 6 steps an epoch: checkpoint-8 is 2 steps into the second
        set_seed(config.train.seed)
        args = build_training_arguments(config, folder, "resume-order")
        args.report_to, args.disable_tqdm = [], True
        model = add_lora(load_base_model(config.model), config.lora)
        return ResumableTrainer(
            model=model, args=args, train_dataset=train_set, data_collator=PaddingCollator(tokenizer.pad_token_id)
        )

    straight = trainer(tmp_path / "straight")
    straight.train()
    shutil.copytree(tmp_path / "straight" / "checkpoint-8", tmp_path / "relaunch" / "checkpoint-8")
    relaunch = trainer(tmp_path / "relaunch")
    torch.manual_seed(1234)  # a relaunch's global RNG is wherever its own start-up left it
    relaunch.train(resume_from_checkpoint=str(tmp_path / "relaunch" / "checkpoint-8"))

    assert relaunch.state.global_step == 16
    trained = {name: p for name, p in straight.model.named_parameters() if p.requires_grad}
    for name, p in relaunch.model.named_parameters():
        if p.requires_grad:
            assert torch.equal(p, trained[name]), f"{name} differs from the uninterrupted run's"


def test_compile_and_liger_reach_training_arguments_and_liger_never_fuses_lm_head(tmp_path):
    from agent.trial.config import ConfigError
    from agent.trial.model import LIGER_UNDER_LORA, device_training_arguments

    args = build_training_arguments(TrialConfig.from_params({"torch_compile": True}), tmp_path, "compiled")
    assert args.torch_compile and not args.use_liger_kernel
    assert not build_training_arguments(TrialConfig.from_params({}), tmp_path, "default").torch_compile
    assert LIGER_UNDER_LORA.get("fused_linear_cross_entropy", False) is False
    with pytest.raises(ConfigError, match="^use_liger_kernel=true needs a CUDA GPU"):
        device_training_arguments(TrialConfig.from_params({"use_liger_kernel": True}).device, cuda=False)
