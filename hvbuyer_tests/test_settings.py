"""One source per default: the settings model reads the environment, the Dagster configs and resources take their
defaults from the core dataclasses, and a run a sensor launches (no run config) gets exactly those values."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import dagster as dg
import pytest

from hvbuyer_assets.core import drift, features, labels, model, performance, problem, retraining, training
from hvbuyer_assets.definitions import build_definitions
from hvbuyer_assets.defs.executor import executor_for
from hvbuyer_assets.defs.model.assets import ModelConfig
from hvbuyer_assets.defs.monitoring.assets import DriftConfig, PerformanceConfig
from hvbuyer_assets.defs.problem import PredictionProblem
from hvbuyer_assets.defs.sensors.raw import raw_run_config
from hvbuyer_assets.defs.sensors.retraining import RetrainingPolicyResource
from hvbuyer_assets.settings import Settings, child_environ, load_settings
from hvbuyer_serving.settings import MAX_BATCH_ROWS, load_serving_settings


def _core_defaults(cls: type, names: list[str] | None = None) -> dict[str, Any]:
    fields = {f.name: f.default for f in dataclasses.fields(cls)}
    return fields if names is None else {name: fields[name] for name in names}


def test_drift_config_defaults_are_the_core_thresholds_field_by_field() -> None:
    assert set(DriftConfig.model_fields) == {f.name for f in dataclasses.fields(drift.DriftThresholds)}
    assert DriftConfig().model_dump() == _core_defaults(drift.DriftThresholds)
    assert DriftConfig().thresholds() == drift.DriftThresholds()


def test_performance_config_defaults_are_the_core_rule_field_by_field() -> None:
    assert PerformanceConfig().model_dump() == _core_defaults(performance.PerformanceRule)


def test_model_config_defaults_are_the_core_params_field_by_field() -> None:
    names = list(ModelConfig.model_fields)
    assert set(names) <= {f.name for f in dataclasses.fields(model.ModelParams)}
    assert ModelConfig().model_dump() == _core_defaults(model.ModelParams, names)
    assert ModelConfig().params() == model.ModelParams()


def test_the_prediction_problem_is_written_once() -> None:
    assert PredictionProblem().model_dump() == _core_defaults(problem.ProblemParams)
    assert PredictionProblem().params() == problem.ProblemParams()
    assert (labels.DEFAULT_HORIZON_DAYS, labels.DEFAULT_THRESHOLD) == (90, 300.0)  # the contract's H and threshold
    assert (problem.HORIZON_DAYS, problem.LARGE_PURCHASE_THRESHOLD) == (90, 300.0)
    assert features.LARGE_AMOUNT == problem.LARGE_PURCHASE_THRESHOLD
    for function in (training.build_training_set, training.snapshot_cutoffs):
        defaults = {n: p.default for n, p in inspect.signature(function).parameters.items() if p.default is not p.empty}
        expected = {"horizon_days": 90, "train_snapshots": 1, "snapshot_step_days": 30}
        if "threshold" in defaults:
            expected["threshold"] = 300.0
        assert defaults == expected


def test_retraining_knobs_default_to_the_core_policy_and_come_from_the_environment() -> None:
    assert RetrainingPolicyResource().policy() == retraining.Policy()
    assert load_settings({}).retraining_policy() == retraining.Policy()
    settings = load_settings(
        {
            "HVBUYER_RETRAIN_COOLDOWN_HOURS": "1.5",
            "HVBUYER_MAX_MODEL_AGE_DAYS": "30",
            "HVBUYER_MIN_NEW_DATA_DAYS": "0",
        }
    )
    assert RetrainingPolicyResource.from_settings(settings).policy() == retraining.Policy(1.5, 30.0, 0.0)
    with pytest.raises(ValueError, match="HVBUYER_MAX_MODEL_AGE_DAYS='soon': Input should be a valid number"):
        load_settings({"HVBUYER_MAX_MODEL_AGE_DAYS": "soon"})
    with pytest.raises(ValueError, match="HVBUYER_RETRAIN_COOLDOWN_HOURS='-1': Input should be greater than or equal"):
        load_settings({"HVBUYER_RETRAIN_COOLDOWN_HOURS": "-1"})


@pytest.mark.parametrize(
    ("job_name", "sensor_run_config"),
    [
        ("retrain", {}),  # the retraining sensor's request carries no run config
        ("ingest_drop", raw_run_config({"customers_d1.csv": "1-1", "transactions_d1.json": "2-2"})),
        ("full_build", raw_run_config({"customers_d1.csv": "1-1", "transactions_d1.json": "2-2"})),
    ],
)
def test_a_sensor_launched_run_gets_the_core_defaults(job_name: str, sensor_run_config: dict[str, Any]) -> None:
    defs = build_definitions(load_settings({}))
    resolved = dg.validate_run_config(defs.resolve_job_def(job_name), sensor_run_config)
    ops = resolved["ops"]
    assert ops["drift_report"]["config"] == _core_defaults(drift.DriftThresholds)
    assert resolved["resources"]["problem"]["config"] == _core_defaults(problem.ProblemParams)
    if "trained_model" in ops:
        assert ops["trained_model"]["config"] == _core_defaults(model.ModelParams, list(ModelConfig.model_fields))


def test_defaults_and_derived_locations() -> None:
    settings = load_settings({})
    assert settings.raw_uri == f"{settings.data_dir}/raw"
    assert settings.mlflow_tracking_uri == f"sqlite:///{settings.data_dir}/mlflow.db"
    assert (settings.raw_sensor_seconds, settings.poll_seconds, settings.max_body_bytes) == (15, 5.0, 8 * 1024**2)
    assert (settings.api_host, settings.api_port, settings.api_url) == ("127.0.0.1", 8080, "http://127.0.0.1:8080")
    assert settings.admin_token is None and settings.s3_endpoint_url is None
    assert settings.executor == "in_process"
    s3 = load_settings({"HVBUYER_DATA_DIR": "s3://bucket/data", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9"})
    assert (s3.raw_uri, s3.layer_uri("scores")) == ("s3://bucket/data/raw", "s3://bucket/data/scores")
    assert s3.mlflow_tracking_uri.startswith("sqlite:///") and "s3://" not in s3.mlflow_tracking_uri
    assert s3.s3_endpoint_url == "http://127.0.0.1:9"
    named = Settings(data_dir="/srv/data", raw_uri="s3://raw/drops", mlflow_tracking_uri="http://mlflow:5000")
    assert (named.data_dir, named.raw_uri, named.raw_is_s3) == ("/srv/data", "s3://raw/drops", True)


def test_an_empty_variable_counts_as_unset_and_a_bad_one_is_named() -> None:
    assert load_settings({"HVBUYER_POLL_SECONDS": "", "HVBUYER_ADMIN_TOKEN": ""}).admin_token is None
    cases = {
        "HVBUYER_RAW_SENSOR_SECONDS": ("0", "greater than 0"),
        "HVBUYER_POLL_SECONDS": ("soon", "valid number"),
        "HVBUYER_MAX_BODY_BYTES": ("-5", "greater than 0"),
        "HVBUYER_API_PORT": ("70000", "less than or equal to 65535"),
        "HVBUYER_EXECUTOR": ("dask", "'in_process', 'celery' or 'k8s'"),
    }
    for name, (value, problem_text) in cases.items():
        with pytest.raises(ValueError, match=f"{name}='{value}': .*{problem_text}"):
            load_settings({name: value})


def test_the_admin_token_never_shows_in_a_repr() -> None:
    assert "s3cret" not in repr(load_settings({"HVBUYER_ADMIN_TOKEN": "s3cret"}))


def test_the_service_reads_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HVBUYER_POLL_SECONDS", "0.5")
    monkeypatch.setenv("HVBUYER_ADMIN_TOKEN", "token")
    monkeypatch.setenv("HVBUYER_API_PORT", "8381")
    served = load_serving_settings()
    assert (served.poll_seconds, served.admin_token, served.api_port) == (0.5, "token", 8381)
    assert served.api_url == "http://127.0.0.1:8381"  # the pipeline notifies the API where it listens
    assert served == load_settings()
    assert MAX_BATCH_ROWS == 10_000


def test_the_executor_follows_the_settings() -> None:
    assert executor_for(load_settings({})) is dg.in_process_executor
    celery = executor_for(
        load_settings(
            {"HVBUYER_EXECUTOR": "celery", "HVBUYER_CELERY_BROKER": "amqp://b//", "HVBUYER_CELERY_BACKEND": "rpc://"}
        )
    )
    assert celery.name == "celery"
    defs = build_definitions(load_settings({"HVBUYER_EXECUTOR": "celery"}))
    assert defs.resolve_job_def("retrain").executor_def.name == "celery"


def test_child_environ_applies_overrides_and_removals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HVBUYER_RAW_URI", "/somewhere")
    env = child_environ({"HVBUYER_DATA_DIR": "/tmp/x"}, unset=("HVBUYER_RAW_URI",))
    assert env["HVBUYER_DATA_DIR"] == "/tmp/x" and "HVBUYER_RAW_URI" not in env and "PATH" in env


def test_the_online_store_defaults_to_sqlite_under_the_data_dir_and_refuses_other_schemes(tmp_path) -> None:
    settings = load_settings({"HVBUYER_DATA_DIR": str(tmp_path)})
    assert settings.online_store == f"sqlite:///{tmp_path}/scores/online_store.db"
    assert settings.api_workers == 1
    redis_url = "redis://127.0.0.1:6379/2"
    assert load_settings({"HVBUYER_ONLINE_STORE": redis_url}).online_store == redis_url
    with pytest.raises(ValueError, match="HVBUYER_ONLINE_STORE='postgresql://x/y': .*sqlite:///PATH or redis://"):
        load_settings({"HVBUYER_ONLINE_STORE": "postgresql://x/y"})
    with pytest.raises(ValueError, match="HVBUYER_API_WORKERS='0'"):
        load_settings({"HVBUYER_API_WORKERS": "0"})


def test_the_raw_chunk_default_is_the_readers_default() -> None:
    from hvbuyer_assets.core.contract import CHUNK_BYTES

    assert Settings().raw_chunk_bytes == CHUNK_BYTES
