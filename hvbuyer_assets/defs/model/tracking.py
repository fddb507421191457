"""What the MLflow run of a new model version records: the problem it answers, the forest's parameters, hold-out
metrics next to the baselines', the evaluation and its comparison plots (ROC, calibration, lift)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from hvbuyer_assets.core import evaluation
from hvbuyer_assets.core.problem import ProblemParams

CANDIDATE = "candidate"
# How the models are called on the comparison plots and tables, the candidate first.
LABELS = {
    CANDIDATE: "random forest (candidate)",
    "logistic_regression": "logistic regression baseline",
    "demographics_only": "demographics-only baseline",
}


def problem_params(problem: ProblemParams, training_set: pd.DataFrame, data_as_of: str) -> dict[str, str]:
    """The prediction problem a model answers, as MLflow run parameters: horizon, threshold, the training
    snapshots and their cutoffs, the hold-out cutoff and the data as-of (the end of the hold-out's label window)."""
    cutoffs = training_set.groupby("split", observed=True)["cutoff"].agg(["min", "max", "unique"])
    train, holdout = cutoffs.loc["train"], cutoffs.loc["holdout"]
    return {
        "horizon_days": str(problem.horizon_days),
        "large_purchase_threshold": f"{problem.large_purchase_threshold:g}",
        "train_snapshots": str(problem.train_snapshots),
        "snapshot_step_days": str(problem.snapshot_step_days),
        "training_cutoff": pd.Timestamp(train["max"]).isoformat(),
        "training_cutoffs": ",".join(sorted(pd.Timestamp(c).date().isoformat() for c in train["unique"])),
        "holdout_cutoff": pd.Timestamp(holdout["max"]).isoformat(),
        "data_as_of": data_as_of,
    }


def problem_note(problem: ProblemParams, params: dict[str, str]) -> str:
    """The run's description in the MLflow UI (markdown)."""
    return (
        f"P(a completed purchase >= {problem.large_purchase_threshold:g} within {problem.horizon_days} days "
        f"after the cutoff). Trained on features as of {params['training_cutoffs']}, evaluated on the hold-out "
        f"at {params['holdout_cutoff'][:10]} (labels up to {params['data_as_of'][:10]})."
    )


def comparison_plots(value: dict[str, Any]) -> dict[str, bytes]:
    """ROC, calibration and lift of the candidate and the baselines on one chart each (from the stored
    ``model_evaluation``'s ``curves``), as PNG bytes by file name."""
    curves = {LABELS.get(name, name): curve for name, curve in value["curves"].items()}
    return {
        "roc.png": evaluation.plot_roc_curves({label: c["roc"] for label, c in curves.items()}),
        "calibration.png": evaluation.plot_calibration(
            {label: pd.DataFrame(c["calibration"]) for label, c in curves.items()}
        ),
        "lift.png": evaluation.plot_lift({label: pd.DataFrame(c["lift"]) for label, c in curves.items()}),
    }


def log_candidate_run(
    value: dict[str, Any], classifier_params: dict[str, Any], problem: dict[str, str], note: str
) -> None:
    """Log into the active run: the problem and the forest's parameters, the hold-out metrics of the candidate
    (``holdout_*``) and of each baseline (``<baseline>_*``), the evaluation JSON and the comparison plots."""
    mlflow.log_params({**problem, **{k: v for k, v in classifier_params.items() if v is not None}})
    mlflow.set_tag("mlflow.note.content", note)
    mlflow.log_metrics({f"holdout_{k}": float(v) for k, v in value["metrics"].items()})
    for kind, metrics in value["baselines"].items():
        mlflow.log_metrics({f"{kind}_{k}": float(v) for k, v in metrics.items()})
    mlflow.log_dict({k: v for k, v in value.items() if k != "curves"}, "evaluation/model_evaluation.json")
    with tempfile.TemporaryDirectory() as tmp:
        for name, png in comparison_plots(value).items():
            (Path(tmp) / name).write_bytes(png)
            mlflow.log_artifact(str(Path(tmp) / name), artifact_path="evaluation")
