"""The MLflow tracking server down: the API keeps serving the champion it has loaded, a retraining (which must
reach the registry) fails loudly, and the same run re-executed once the server is back succeeds."""

from __future__ import annotations

import time

import httpx

from hvbuyer_tests.prod.deployment import PROD_MARKS, Deployment, FirstBuild, Runs, api_get

pytestmark = PROD_MARKS
SEED_EXAMPLE = {"age": 35, "region": "East", "loyalty_points": 1200}


def test_mlflow_server_down_api_keeps_serving_promotion_fails_then_succeeds(
    prod: Deployment, first_build: FirstBuild
) -> None:
    assert first_build.run["status"] == "SUCCESS"
    runs = Runs(prod)
    served = api_get(prod, "/model").json()["version"]
    assert served is not None
    mlflow = prod.running("mlflow")
    assert mlflow is not None
    prod.stop_process(mlflow)
    try:
        # The API answers from the model it holds, although it cannot re-resolve the alias.
        for _ in range(3):
            answer = httpx.post(f"{prod.env['HVBUYER_API_URL']}/predict", json=SEED_EXAMPLE, timeout=10.0)
            assert answer.status_code == 200 and answer.json()["model_version"] == served
        assert api_get(prod, "/health/ready").json()["model_version"] == served

        failed = runs.wait_run(runs.launch("retrain"))
        assert failed["status"] == "FAILURE"
        messages = " ".join(str(e.get("message")) for e in runs.step_events(failed["runId"]))
        assert "failed" in messages.lower()
    finally:
        started = prod.up(say=lambda _: None)
    assert list(started) == ["mlflow"]

    # Retried once the server is back: by the instance's run retries when the run itself failed (the run worker
    # could not reach MLflow; deploy/dagster.yaml), else by hand. Never two retrainings at once.
    def retries_of_failed() -> list[dict]:
        return [r for r in runs.all() if {"key": "dagster/root_run_id", "value": failed["runId"]} in r["tags"]]

    will_retry = {"key": "dagster/will_retry", "value": "true"} in runs.all(runIds=[failed["runId"]])[0]["tags"]
    deadline = time.monotonic() + 120
    while will_retry and not retries_of_failed() and time.monotonic() < deadline:
        time.sleep(2)
    runs.wait_idle()
    retries = retries_of_failed()
    if not any(r["status"] == "SUCCESS" for r in retries):
        retries.append(runs.wait_run(runs.launch("retrain")))
    assert any(r["status"] == "SUCCESS" for r in retries), retries
    assert api_get(prod, "/model").json()["version"] is not None
