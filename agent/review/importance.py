"""Parameter importance with respect to the objective, computed as W&B's importance panel does.

W&B's panel shows two numbers per parameter: the linear (Pearson) correlation of the parameter
with the metric, and the feature importance of a random forest trained with the parameters as
inputs and the metric as target. Categorical parameters become one-hot columns
(`target_modules=qv`), so a row answers "does choosing this value go with a better metric?";
booleans become 0/1. Numbers are taken as they are, not on a log scale, as W&B does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.review.results import SweepResults

MIN_RUNS = 3  # a forest on fewer finished runs than this says nothing
FOREST_TREES = 100
FOREST_SEED = 0  # fixed so the same sweep always gives the same importances


@dataclass(frozen=True)
class Importance:
    feature: str
    """A numeric parameter's name, or `name=value` for one category of a categorical parameter."""
    correlation: float | None
    """Pearson correlation with the objective; None when the column or the objective is constant."""
    importance: float | None
    """Random-forest feature importance (all columns sum to 1); None with fewer than MIN_RUNS runs."""


def compute_importance(results: SweepResults) -> list[Importance]:
    """One row per feature column, most important first."""
    runs = results.finished
    columns = encode_features(results)
    if not columns or len(runs) < 2:
        return []
    target = np.array([run.objective for run in runs])
    features = np.column_stack(list(columns.values()))
    importances = fit_forest(features, target) if len(runs) >= MIN_RUNS else [None] * len(columns)
    rows = [
        Importance(name, pearson(column, target), importance)
        for (name, column), importance in zip(columns.items(), importances)
    ]
    return sorted(rows, key=lambda row: -(row.importance if row.importance is not None else abs(row.correlation or 0)))


def encode_features(results: SweepResults) -> dict[str, np.ndarray]:
    columns = {}
    for parameter in results.swept:
        values = [run.params.get(parameter.name) for run in results.finished]
        if not parameter.categorical:
            columns[parameter.name] = np.array([float(value) for value in values])
        elif all(isinstance(value, bool) for value in values):
            columns[parameter.name] = np.array([float(value) for value in values])
        else:
            for category in sorted({str(value) for value in values}):
                columns[f"{parameter.name}={category}"] = np.array([float(str(value) == category) for value in values])
    return columns


def fit_forest(features: np.ndarray, target: np.ndarray) -> list[float]:
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(n_estimators=FOREST_TREES, random_state=FOREST_SEED)
    forest.fit(features, target)
    return [float(value) for value in forest.feature_importances_]


def pearson(column: np.ndarray, target: np.ndarray) -> float | None:
    if np.ptp(column) == 0 or np.ptp(target) == 0:
        return None
    return float(np.corrcoef(column, target)[0, 1])
