"""``champion_model`` tells a running API to reload right after a promotion (so the API follows without waiting for
its poll), and a promotion with no API listening still succeeds."""

from __future__ import annotations

import json

import dagster as dg
import mlflow
import pytest

from hvbuyer_assets import registry
from hvbuyer_assets.definitions import ALL_ASSETS, build_resources
from hvbuyer_tests.pipeline import Workspace
from hvbuyer_tests.serving.service import ADMIN_TOKEN, free_port, serve, wait_until

SEED_EXAMPLE = {"age": 35, "region": "East", "loyalty_points": 1200}


def _promote_a_copy_of_v1(workspace: Workspace) -> str:
    """Register a copy of v1 and run the real ``champion_model`` asset with it as a (better-scoring) candidate."""
    client = workspace.client()
    v1 = client.get_model_version(registry.MODEL_NAME, "1")
    new = registry.register(
        client, v1.source, v1.run_id, {k: v for k, v in v1.tags.items() if k != "hvbuyer.promotion"}
    )
    stored = workspace.root / "models" / "registered_model.json"
    candidate = json.loads(stored.read_text())
    candidate["version"] = new
    candidate["metrics"] = {**candidate["metrics"], "roc_auc": 0.999}
    stored.write_text(json.dumps(candidate))
    try:
        result = dg.materialize(ALL_ASSETS, selection=["champion_model"], resources=build_resources(workspace.settings))
    finally:
        mlflow.end_run()
    assert result.success
    assert workspace.champion_version() == new
    return new


def test_promotion_notifies_the_api_and_succeeds_without_one(
    workspace_copy: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HVBUYER_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("HVBUYER_API_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    first = _promote_a_copy_of_v1(workspace_copy)  # succeeds although the notification fails

    with serve(workspace_copy.root, poll_seconds=600, HVBUYER_ADMIN_TOKEN=ADMIN_TOKEN) as api:
        assert api.get("/model").json()["version"] == first
        monkeypatch.setenv("HVBUYER_API_URL", str(api.base_url))
        second = _promote_a_copy_of_v1(workspace_copy)
        # The API received the notification (whether or not champion_model's 2 s wait for the answer sufficed on a
        # loaded machine, the request arrived and was authorised)...
        reloads = 'hvbuyer_http_requests_total{endpoint="/admin/reload",method="POST",status="200"} 1.0'
        wait_until(lambda: reloads in api.get("/metrics").text, "the reload notification to arrive", timeout=240)
        # ...and switches without a poll: the next poll is 600 s after start-up, far beyond this wait.
        wait_until(
            lambda: api.post("/predict", json=SEED_EXAMPLE).json()["model_version"] == second,
            "the notified API to serve the new champion",
            timeout=240,
        )
