"""`python -m agent.train` as an agent launches it: a real subprocess, W&B offline."""

from pathlib import Path

import pytest
import yaml
from helpers import inspect_summary, logged_rows, run_program, wandb_run_dir

TINY = ["--model_name_or_path=builtin:tiny-llama", "--dataset=builtin:synthetic"]


@pytest.mark.e2e
def test_a_trial_raises_rouge_above_the_untuned_model(tiny_model_dir, dialogues, tmp_path):
    result = run_program(
        [
            "-m",
            "agent.train",
            "--model_name_or_path=builtin:tiny-llama",
            f"--dataset={dialogues}",
            # Enough to learn the summaries' form whatever the batch order: the best of 4 seeds rose 18 or more.
            "--max_steps=160",
            "--eval_steps=40",
            "--eval_subset_size=16",
            "--learning_rate=2e-3",
            "--target_modules=qkvo",
            "--max_new_tokens=32",
            "--logging_steps=20",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = wandb_run_dir(tmp_path)

    history = [row for row in logged_rows(run_dir) if "eval/rougeL" in row]
    assert [row["train/global_step"] for row in history] == [0, 40, 80, 120, 160]
    baseline, best = history[0]["eval/rougeL"], max(row["eval/rougeL"] for row in history)
    assert best > baseline + 5, history

    summary = inspect_summary(run_dir)
    assert summary["state"] == "finished" and summary["exit_code"] == 0
    metrics = summary["summary"]
    assert metrics["eval/rougeL"] == pytest.approx(best)  # the summary holds the best, not the last
    for key in (
        "final/rouge1",
        "final/rouge2",
        "final/rougeL",
        "final/rougeLsum",
        "final/gen_len",
        "train/loss",
        "train/tokens_per_s",
        "train/trainable_params",
        "time/train_s",
    ):
        assert key in metrics, key
    assert metrics["train/real_token_share"] >= 0.9
    config = summary["config"]
    assert config["lora_r"] == 8 and config["target_modules"] == "qkvo"
    # our values, not the ones transformers' WandbCallback writes over them
    assert config["bf16"] == "auto" and config["output_dir"] == "outputs"

    adapter = tmp_path / "outputs" / summary["run_id"] / "best_adapter"
    assert (adapter / "adapter_model.safetensors").exists()
    saved = yaml.safe_load((adapter / "trial_config.yaml").read_text())
    assert saved["learning_rate"] == 2e-3 and saved["max_steps"] == 160


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lora_rank=8"], "error: unknown parameter 'lora_rank': did you mean lora_r?"),
        (["--learning_rate=fast"], "error: learning_rate='fast' is not a number"),
        (["--config=missing.yaml"], "error: config file 'missing.yaml' does not exist"),
        (["stray"], "error: unexpected argument 'stray': give parameters as --name=value"),
    ],
)
def test_bad_flags_are_one_line_before_any_run_starts(tmp_path, monkeypatch, capsys, args, message):
    from agent.trial.program import main

    monkeypatch.chdir(tmp_path)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [err.strip()] and err.startswith(message), err
    assert not (tmp_path / "wandb").exists()  # refused before wandb.init


@pytest.mark.parametrize(
    "model, target_modules, message",
    [
        ("./no-model", "qv", "model directory './no-model' does not exist"),
        ("empty-model", "qv", "model directory 'empty-model' holds no model"),
        ("builtin:tiny-llama", "q_proj,gate", "target_modules='q_proj,gate': no linear layer named gate"),
    ],
)
def test_a_bad_model_or_layer_name_is_found_from_the_config_alone(
    tiny_model_dir, tmp_path, monkeypatch, model, target_modules, message
):
    from agent.trial.config import ConfigError, TrialConfig
    from agent.trial.model import check_model

    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty-model").mkdir()
    config = TrialConfig.from_params({"model_name_or_path": model, "target_modules": target_modules})
    with pytest.raises(ConfigError) as error:
        check_model(config.model, config.lora)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_a_model_without_a_tokenizer_is_one_line(tiny_model_dir, tmp_path, monkeypatch):
    from agent.trial.config import ConfigError, TrialConfig
    from agent.trial.model import load_tokenizer

    monkeypatch.chdir(tmp_path)
    (tmp_path / "no-tokenizer").mkdir()
    (tmp_path / "no-tokenizer" / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    config = TrialConfig.from_params({"model_name_or_path": "no-tokenizer"})
    with pytest.raises(ConfigError) as error:
        load_tokenizer(config.model)
    assert str(error.value).startswith("cannot load the tokenizer of 'no-tokenizer'") and "\n" not in str(error.value)


@pytest.mark.e2e
def test_bad_input_found_inside_the_run_is_one_line_on_the_terminal(tiny_model_dir, tmp_path):
    # End to end through wandb.init and the run's set-up. The layer names are checked before any
    # data loads: this Hub id is never fetched (no network here, so a fetch would fail differently).
    args = ["--dataset=nobody/no-such-dataset", "--target_modules=qz"]
    result = run_program(["-m", "agent.train", *TINY, *args], cwd=tmp_path, timeout=180)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: target_modules='qz': no linear layer named qz"), errors
    assert "Traceback" not in result.stderr


def test_config_file_is_read_and_flags_override_it(tmp_path):
    from agent.trial.program import parse_args

    config_file = tmp_path / "best.yaml"
    config_file.write_text("lora_r: 16\nlearning_rate: 1.0e-4\n")
    assert parse_args([f"--config={config_file}", "--lora_r", "32", "--bf16"]) == {
        "lora_r": "32",
        "learning_rate": 1e-4,
        "bf16": "true",
    }


def test_help_lists_every_parameter():
    result = run_program(["-m", "agent.train", "--help"], cwd=Path.cwd())
    assert result.returncode == 0
    from agent.trial.config import PARAMETERS

    for name in PARAMETERS:
        assert f"--{name}" in result.stdout


@pytest.mark.e2e
def test_a_sweep_run_keeps_its_parameters_quietly_and_lands_in_the_sweeps_project(
    tiny_model_dir, dialogues, tmp_path, monkeypatch
):
    """As `wandb agent SWEEP_ID` launches a run: the parameters in WANDB_SWEEP_PARAM_PATH, locked by the sweep.

    The agent found the sweep through the project in wandb/settings (no entity or project in the id):
    the run must land there, and no "Config item ... was locked by 'sweep'" warning may be printed.
    """
    swept = {
        "model_name_or_path": "builtin:tiny-llama",
        "dataset": str(dialogues),
        "learning_rate": 1e-3,
        "max_steps": 2,
        "eval_steps": 2,
        "eval_subset_size": 4,
        "max_new_tokens": 4,
        "logging_steps": 1,
        "per_device_train_batch_size": 4,
        "seed": 3,
    }
    params = tmp_path / "config-run1.yaml"
    params.write_text(yaml.safe_dump({name: {"value": value} for name, value in swept.items()}))
    (tmp_path / "wandb").mkdir()
    (tmp_path / "wandb" / "settings").write_text("[default]\nproject = team-project\n")
    env = {"WANDB_SWEEP_ID": "abc12345", "WANDB_SWEEP_PARAM_PATH": str(params), "WANDB_SILENT": "false"}
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    result = run_program(["-m", "agent.train", "--lora_r=4"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "was locked" not in result.stdout + result.stderr

    summary = inspect_summary(wandb_run_dir(tmp_path))
    assert summary["project"] == "team-project"
    config = summary["config"]
    assert {name: config[name] for name in swept} == swept
    assert config["lora_r"] == 4  # a flag the sweep does not set still applies
    assert isinstance(summary["summary"]["eval/rougeL"], (int, float))
    assert isinstance(summary["summary"]["train/loss"], float)  # the Trainer's logs still reach the run
