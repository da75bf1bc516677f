import re

import pytest

from agent.trial.config import PARAMETERS, ConfigError, TrialConfig


def test_the_defaults_help_advertises_are_the_ones_a_run_without_flags_gets():
    # Each default typed back as the flag string a user would copy from --help must give the same trial.
    from agent.trial.program import usage

    advertised = dict(re.findall(r"^  --(\w+) .*\[default: (.*)\]$", usage(), re.MULTILINE))
    assert set(advertised) == set(PARAMETERS)
    assert TrialConfig.from_params(advertised) == TrialConfig.from_params({})


def test_flag_strings_are_parsed_to_their_types():
    config = TrialConfig.from_params({"lora_r": "16", "learning_rate": "1e-4", "bf16": "false", "max_steps": "50"})
    assert (config.lora.lora_r, config.train.learning_rate, config.model.bf16, config.train.max_steps) == (
        16,
        1e-4,
        "false",
        50,
    )


@pytest.mark.parametrize("given, expected", [("true", True), ("False", False), (True, True), (False, False)])
def test_switches_take_true_or_false_from_flags_and_yaml(given, expected):
    assert TrialConfig.from_params({"padding_free": given}).device.padding_free is expected


def test_params_round_trip():
    config = TrialConfig.from_params({"lora_r": 32, "target_modules": "qkvo", "warmup_ratio": 0.1})
    assert TrialConfig.from_params(config.to_params()) == config


def test_keys_injected_by_wandb_are_ignored():
    assert TrialConfig.from_params({"_wandb": {"cli_version": "0.31.0"}, "lora_r": 4}).lora.lora_r == 4


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as error:
        TrialConfig.from_params({"lora_rank": 8, "learning_rate": "fast", "lora_dropout": "x"})
    assert error.value.problems == [
        "unknown parameter 'lora_rank': did you mean lora_r?",
        "learning_rate='fast' is not a number; for example learning_rate=0.0002",
        "lora_dropout='x' is not a number; for example lora_dropout=0.05",
    ]


@pytest.mark.parametrize(
    "params, message",
    [
        ({"lora_r": 0}, "lora_r=0: must be > 0"),
        ({"lora_r": 2.5}, "lora_r=2.5 is not an integer; for example lora_r=8"),
        ({"lora_r": True}, "lora_r=True is not an integer; for example lora_r=8"),
        ({"lora_dropout": 1.0}, "lora_dropout=1.0: must be in [0, 1)"),
        ({"max_steps": 0}, "max_steps=0: give a positive step count, or -1 to train by epochs"),
        ({"bf16": "maybe"}, "bf16='maybe': use auto, true or false"),
        ({"padding_free": 1}, "padding_free=1 is not true or false; for example padding_free=true"),
        ({"torch_compile": "yes"}, "torch_compile='yes' is not true or false; for example torch_compile=false"),
        ({"target_modules": "q_proj,"}, "target_modules='q_proj,': use qv, qkv, qkvo, all-linear, or a comma list"),
        ({"plateau_patience": -1}, "plateau_patience=-1: must be >= 0 (0 turns plateau stopping off)"),
        ({"plateau_patience": 1.5}, "plateau_patience=1.5 is not an integer; for example plateau_patience=0"),
        ({"plateau_threshold": -0.1}, "plateau_threshold=-0.1: must be a number >= 0"),
        ({"plateau_threshold": "nan"}, "plateau_threshold=nan: must be a number >= 0"),
    ],
)
def test_bad_values_name_the_fix(params, message):
    with pytest.raises(ConfigError) as error:
        TrialConfig.from_params(params)
    assert str(error.value).startswith(message)


def test_target_module_aliases_resolve_to_module_names():
    def names(alias):
        return TrialConfig.from_params({"target_modules": alias}).lora.module_names()

    assert names("qv") == ["q_proj", "v_proj"]
    assert names("qkvo") == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert names("all-linear") == "all-linear"
    assert names("q_proj, up_proj") == ["q_proj", "up_proj"]
