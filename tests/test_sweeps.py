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
