"""Every shipped sweep YAML is valid and every parameter set it can produce builds a trial config."""

from pathlib import Path

import pytest

import sweeps
from agent.sweep_config import grid_size, load_sweep_config, runs_trainer, sweep_problems
from agent.trial.config import TrialConfig

SWEEPS = sorted((Path(__file__).resolve().parents[1] / "sweeps").glob("*.yaml"))


def test_the_required_sweeps_ship():
    assert {p.stem for p in SWEEPS} >= {"lora_rank", "learning_rate", "target_modules", "bayes", "smoke"}


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_shipped_sweep_is_valid(path):
    config = load_sweep_config(path)
    assert sweep_problems(config) == []
    assert runs_trainer(config)
    assert config["metric"] == {"name": "eval/rougeL", "goal": "maximize"}
    assert config["command"] == ["${env}", "${interpreter}", "-m", "agent.train", "${args}"]


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_sampled_parameters_build_trial_configs(path):
    config = load_sweep_config(path)
    proposed = []
    for _ in range(grid_size(config) or 8):
        run = sweeps.next_run(
            config,
            [
                sweeps.SweepRun(config=p.config, state=sweeps.RunState.finished, summary_metrics={"eval/rougeL": 1.0})
                for p in proposed
            ],
        )
        assert run is not None
        proposed.append(run)
        params = {name: spec["value"] for name, spec in run.config.items()}
        TrialConfig.from_params(params)
    if grid_size(config):
        assert (
            sweeps.next_run(
                config, [sweeps.SweepRun(config=p.config, state=sweeps.RunState.finished) for p in proposed]
            )
            is None
        )


def test_grid_sizes():
    sizes = {p.stem: grid_size(load_sweep_config(p)) for p in SWEEPS}
    assert sizes == {"bayes": None, "learning_rate": 2, "lora_rank": 4, "smoke": 4, "target_modules": 2}


def test_bayes_sweep_sets_hyperband_strictness_explicitly():
    config = load_sweep_config(Path(SWEEPS[0]).parent / "bayes.yaml")
    assert config["early_terminate"]["type"] == "hyperband" and "strict" in config["early_terminate"]


def validate(tmp_path, content: bytes | str) -> tuple[int, list[str]]:
    """`lora-sweep validate` on a file holding `content`: its exit code and its stderr lines."""
    from click.testing import CliRunner

    from agent.cli import main

    sweep = tmp_path / "sweep.yaml"
    sweep.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = CliRunner().invoke(main, ["validate", str(sweep)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr.splitlines()


TRAINER = "program: agent/train.py\n"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x7fELF\x02\x01\x01\x00\x00\x00\xff\xfe\x00", "is not UTF-8 text"),
        ("method: random\nparameters:\n  x: {values: [\xe9]}\n".encode("latin-1"), "is not UTF-8 text"),
        (
            TRAINER + "method: random\nparameters:\n  lora_dropout: {min: 0, max: 0.5}\n",
            "wandb sweep refuses this file: Parameter lora_dropout is ambiguous",
        ),
        ("method: random\nparameters:\n  lora_r: {values: [4, 8]}\n", "neither program nor command"),
        (
            TRAINER + "method: grid\nparameters:\n  target_modules: {values: [qv, 'q_proj,qz']}\n",
            "target_modules='q_proj,qz': Llama models have no linear layer named qz",
        ),
    ],
    ids=["binary", "latin-1", "ambiguous-range", "nothing-to-launch", "impossible-module"],
)
def test_validate_refuses_in_one_line(tmp_path, content, message):
    code, errors = validate(tmp_path, content)
    assert code == 1 and len(errors) == 1 and message in errors[0], errors


def test_target_modules_of_other_architectures_are_left_to_the_trial_program(tmp_path):
    # GPT-2 names its attention `c_attn`: only the loaded model can say which names exist.
    code, errors = validate(
        tmp_path,
        TRAINER
        + "method: grid\nparameters:\n  model_name_or_path: {value: gpt2}\n  target_modules: {values: [c_attn]}\n",
    )
    assert code == 0, errors


def test_ambiguity_check_is_w_and_bs_own():
    """The sweeps engine's schema accepts a mixed int/float range; `wandb sweep`'s own check does not."""
    config = {"program": "agent/train.py", "method": "random", "parameters": {"lora_dropout": {"min": 0, "max": 0.5}}}
    assert not any("ambiguous" in str(v) for v in sweeps.schema_violations_from_proposed_config(config))
    assert any("ambiguous" in p for p in sweep_problems(config))


def test_hyperband_without_a_goal_minimizes_like_objective_of():
    """W&B's default goal is `minimize`: the engine's hyperband and our one reading of the goal agree."""
    from agent.records import objective_of

    config = {
        "method": "random",
        "metric": {"name": "m"},
        "parameters": {"x": {"values": [1, 2]}},
        "early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 2, "strict": True},
    }
    runs = [
        sweeps.SweepRun(name=name, state=sweeps.RunState.running, config={"x": {"value": 1}}, history=[{"m": v}] * 3)
        for name, v in [("low", 1), ("high", 10), ("mid", 5), ("other", 6)]
    ]
    assert [run.name for run in sweeps.stop_runs(config, runs)] == ["high"]  # the worst when minimizing
    assert objective_of(config).goal == "minimize" and not objective_of(config).maximize


def test_validate_states_w_and_bs_default_goal(tmp_path):
    from click.testing import CliRunner

    from agent.cli import main

    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(TRAINER + "method: random\nmetric: {name: eval/rougeL}\nparameters:\n  lora_r: {values: [4, 8]}\n")
    result = CliRunner().invoke(main, ["validate", str(sweep)])
    assert result.exit_code == 0 and "optimizing eval/rougeL (minimize)" in result.output
