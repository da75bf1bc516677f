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


# Plateau stopping: the rule on hand-made ROUGE-L sequences (the first value is the step-0 baseline).
@pytest.mark.parametrize(
    "scores, patience, threshold, stops_at",
    [
        ([5.0, 8.0, 11.0, 14.0, 17.0], 2, 0.3, None),  # never plateaus
        ([5.0], 1, 0.3, None),  # a single evaluation sets the reference, nothing to compare
        ([5.0, 5.0], 1, 0.0, 1),  # equal is no improvement, even at threshold 0
        ([5.0, 9.0, 9.1, 8.0, 12.0], 2, 0.3, 3),  # plateau at the 4th evaluation: the later gain is never seen
        ([5.0, 9.0, 9.1, 8.0, 12.0], 3, 0.3, None),  # more patience waits for it
        ([20.0, 20.5, 21.0, 21.5], 1, 0.5, None),  # gains exactly at the threshold count
        ([20.0, 20.3, 20.6, 20.9], 1, 0.3, None),  # ... also where decimals round (20.3 - 20.0 > 0.3 in floats)
        ([20.0, 20.25, 20.5, 20.75], 1, 0.5, 1),  # below it they do not
        ([20.0, 20.25, 20.5, 20.75, 21.0], 2, 0.5, None),  # but slow gains add up against the reference
        ([20.0, 30.0, 10.0, 30.0, 30.0], 2, 0.3, 3),  # a dip, then back to the best: still no improvement
        ([5.0, 6.0, 7.0, 8.0], 0, 0.3, None),  # patience 0: off
    ],
)
def test_the_plateau_rule_on_objective_sequences(scores, patience, threshold, stops_at):
    from agent.trial.plateau import stop_step

    assert stop_step(list(enumerate(scores)), patience, threshold) == stops_at


def test_the_plateau_rule_follows_the_goal_and_its_state_round_trips():
    from agent.trial.plateau import Plateau, stop_step

    losses = [(0, 3.0), (10, 2.0), (20, 1.9), (30, 1.8)]
    assert stop_step(losses, 2, 0.3, maximize=False) == 30
    assert stop_step(losses, 2, 0.3, maximize=True) == 20
    half = Plateau(2, 0.3)
    for step, score in [(0, 5.0), (10, 9.0), (20, 9.1)]:
        half.observe(score, step)
    resumed = Plateau(2, 0.3)
    resumed.restore(half.state())
    assert resumed == half and resumed.observe(8.0, 30) and resumed.stopped_step == 30


@pytest.mark.e2e
def test_a_trial_on_a_plateau_stops_early_finishes_and_a_relaunch_trains_nothing_again(
    tiny_model_dir, dialogues, tmp_path
):
    # A learning rate this small leaves ROUGE where the untuned model has it: a plateau from step 0.
    args = [
        "-m",
        "agent.train",
        "--model_name_or_path=builtin:tiny-llama",
        f"--dataset={dialogues}",
        "--max_steps=60",
        "--eval_steps=10",
        "--eval_subset_size=8",
        "--max_new_tokens=16",
        "--learning_rate=1e-6",
        "--logging_steps=5",
        "--plateau_patience=2",
        f"--checkpoint_dir={tmp_path / 'volume'}",
    ]
    first = run_program(args, cwd=tmp_path, env={"WANDB_RUN_ID": "flat"})
    assert first.returncode == 0, first.stderr[-3000:]
    assert "training stops at step 20" in first.stderr
    run_dir = wandb_run_dir(tmp_path)
    rows = logged_rows(run_dir)
    assert [row["train/global_step"] for row in rows if "eval/rougeL" in row] == [0, 10, 20]
    assert max(row["train/global_step"] for row in rows if "train/loss" in row) == 20
    summary = inspect_summary(run_dir)
    assert summary["state"] == "finished" and summary["exit_code"] == 0
    metrics = summary["summary"]
    assert metrics["plateau/stopped_at_step"] == 20 and metrics["launch/outcome"] == "finished"
    assert "final/rougeL" in metrics and (tmp_path / "outputs" / "flat" / "best_adapter").is_dir()

    # Launched again (as a requeue would), it restores the plateau from its checkpoint: nothing is trained.
    second = run_program(args, cwd=tmp_path, env={"WANDB_RUN_ID": "flat"})
    assert second.returncode == 0, second.stderr[-3000:]
    [relaunch] = [d for d in (tmp_path / "wandb").glob("offline-run-*") if d != run_dir]
    assert not [row for row in logged_rows(relaunch) if "train/loss" in row or "eval/rougeL" in row]
    again = inspect_summary(relaunch)["summary"]
    assert again["plateau/stopped_at_step"] == 20 and again["launch/resumed_from_step"] == 20
    assert again["final/rougeL"] == metrics["final/rougeL"]
