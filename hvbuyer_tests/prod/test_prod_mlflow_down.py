"""The MLflow tracking server down: the API keeps serving the champion it has loaded and its readiness says why it
cannot follow the registry, a retraining (which must reach the registry) fails naming the server, and once the
server is back the retraining succeeds (re-executed by the instance's run retries, else launched again) and
readiness recovers."""

from __future__ import annotations

import httpx

from hvbuyer_assets import registry
from hvbuyer_tests.prod.deployment import PROD_MARKS, Deployment, Runs, api_get, wait_for
from hvbuyer_tests.prod.scenario import Drifted

pytestmark = PROD_MARKS
SEED_EXAMPLE = {"age": 35, "region": "East", "loyalty_points": 1200}


def test_mlflow_server_down_api_keeps_serving_says_why_promotion_fails_then_succeeds(
    prod: Deployment, drifted: Drifted
) -> None:
    assert drifted.retrain.run["status"] == "SUCCESS"
    runs = Runs(prod)
    served = api_get(prod, "/model").json()["version"]
    assert served is not None
    mlflow = prod.running("mlflow")
    assert mlflow is not None
    prod.stop_process(mlflow)
    try:
        # The API answers from the model it holds, although it cannot re-resolve the alias; readiness stays 200
        # (the service can answer) but says it is degraded and why.
        ready = wait_for(
            lambda: (r := api_get(prod, "/health/ready")).json().get("status") == "degraded" and r,
            "readiness degraded while MLflow is down",
            timeout=60,
        )
        body = ready.json()
        assert ready.status_code == 200 and body["model_version"] == served
        assert (
            prod.env["MLFLOW_TRACKING_URI"] in body["reason"] and "cannot follow the registry alias" in body["reason"]
        )
        for _ in range(3):
            answer = httpx.post(f"{prod.env['HVBUYER_API_URL']}/predict", json=SEED_EXAMPLE, timeout=10.0)
            assert answer.status_code == 200 and answer.json()["model_version"] == served

        failed = runs.wait_run(runs.launch("retrain"))
        assert failed["status"] == "FAILURE"
        # The step's failure says which server could not be reached, as the run's event log in the UI shows it:
        # on the Celery workers the mlflow resource fails before the step runs, so the step's failure is the
        # "Initialization of resources [...] failed." event, whose error is the resource's own.
        named = f"MLflow tracking server {prod.env['MLFLOW_TRACKING_URI']} unreachable: "
        events = runs.step_events(failed["runId"])
        errors = [
            [e["error"]["message"], *(c["message"] for c in e["error"]["causes"])]
            for e in events
            if e["__typename"] in ("ResourceInitFailureEvent", "ExecutionStepFailureEvent")
        ]
        assert errors and all(any(named in text for text in error) for error in errors), errors
        # So does the run's own failure event (RUN_FAILURE), in its error's message: the exception that
        # dagster-celery gets back through Celery's result backend keeps its message, not its cause.
        ends = [e["error"]["message"] for e in events if e["__typename"] == "RunFailureEvent"]
        assert len(ends) == 1 and f"resource mlflow: {named}" in ends[0], ends
    finally:
        started = prod.up(say=lambda _: None)
    assert list(started) == ["mlflow"]

    # Retried once the server is back: by the instance's run retries when the run itself failed (the run worker
    # could not reach MLflow; deploy/dagster.yaml), else by hand. Never two retrainings at once.
    runs.wait_idle()
    retries = [r for r in runs.all() if {"key": "dagster/root_run_id", "value": failed["runId"]} in r["tags"]]
    if not any(r["status"] == "SUCCESS" for r in retries):
        retries.append(runs.wait_run(runs.launch("retrain")))
    assert any(r["status"] == "SUCCESS" for r in retries), retries
    champion = str(registry.champion(registry.client(prod.env["MLFLOW_TRACKING_URI"])).version)
    expected = {"status": "ready", "model_version": champion, "runtime": "onnx"}
    wait_for(lambda: api_get(prod, "/health/ready").json() == expected, "readiness ready again", timeout=60)
