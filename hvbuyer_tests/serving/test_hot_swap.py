"""Hot swap under load: a different champion (another forest, other answers) is swapped in while clients hammer
``/predict``: zero failed requests, and every answer names the version that computed it (its probability is that
version's); then a corrupt new version is rejected while the old one keeps serving (visible in /model and /metrics).

A request in flight during a swap finishes on the model it started with: a swap lands between a request taking the
model and answering only by chance under load, so a second test makes it land there every time (the served model's
ONNX session moves the registry alias and refreshes the store before it computes) and checks each route's answer.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import pytest
from fastapi.testclient import TestClient

from hvbuyer_assets import registry
from hvbuyer_assets.core.model import ONNX_PARITY_TOLERANCE
from hvbuyer_serving.api.routes.predict import LARGE_BODY
from hvbuyer_serving.app import create_app
from hvbuyer_serving.model_store import ChampionStore
from hvbuyer_tests.pipeline import Workspace
from hvbuyer_tests.serving.load import SEED, LoadLoop
from hvbuyer_tests.serving.models import probability, register_different_model
from hvbuyer_tests.serving.service import serve


def _wait_for(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _copy_of(client: mlflow.MlflowClient, version: str, run_id: str | None = None, **tags: str) -> str:
    source = client.get_model_version(registry.MODEL_NAME, version)
    kept = {k: v for k, v in source.tags.items() if k != "hvbuyer.promotion"}
    return registry.register(client, source.source, run_id or source.run_id, {**kept, **tags})


def _corrupt_version(workspace: Workspace) -> str:
    """A version whose registered ONNX graph is garbage although tagged verified (a broken upload)."""
    client = workspace.client()
    experiment = client.create_experiment("corrupt", artifact_location=str(workspace.root / "corrupt_artifacts"))
    run = client.create_run(experiment)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(b"this is not an onnx graph")
        client.log_artifact(run.info.run_id, str(path), artifact_path="onnx")
    client.set_terminated(run.info.run_id)
    uri = f"runs:/{run.info.run_id}/{registry.ONNX_ARTIFACT_PATH}"
    return _copy_of(client, "1", run_id=run.info.run_id, **{registry.ONNX_URI_TAG: uri})


def test_hot_swap_under_load_and_corrupt_version_rejected(workspace_copy: Workspace, tmp_path: Path) -> None:
    client = workspace_copy.client()
    log_file = tmp_path / "api.log"
    with serve(workspace_copy.root, poll_seconds=0.2, log_file=log_file) as api:
        assert api.post("/admin/reload").status_code == 403  # HVBUYER_ADMIN_TOKEN unset: admin disabled
        new = register_different_model(workspace_copy)
        expected = {version: probability(workspace_copy, version, SEED) for version in ("1", new)}
        assert abs(expected["1"] - expected[new]) > 1e-3  # a different model: its answers tell it apart
        with LoadLoop(str(api.base_url)) as load:
            _wait_for(lambda: load.total() > 50, "the load loop to run")
            registry.promote(client, new)
            _wait_for(lambda: load.served(new) > 0, "the new champion to be served")
            served_before = load.total()
            _wait_for(lambda: load.total() > served_before + 50, "more requests on the new one")

            corrupt = _corrupt_version(workspace_copy)
            registry.promote(client, corrupt)
            _wait_for(lambda: api.get("/model").json()["rejected_version"] == corrupt, "the corrupt version rejection")
            rejected_at = load.total()
            _wait_for(lambda: load.total() > rejected_at + 50, "requests after the rejection")
        assert load.errors == []
        assert {(status, version) for status, version, _ in load.outcomes} <= {(200, "1"), (200, new)}, load.outcomes
        assert load.served("1") > 0 and load.served(new) > 0
        for _, version, answer in load.outcomes:  # each answer was computed by the version it names
            assert answer == pytest.approx(expected[version], abs=ONNX_PARITY_TOLERANCE), (version, answer, expected)

        card = api.get("/model").json()
        assert card["version"] == new and card["runtime"] == "onnx"
        assert card["rejected_version"] == corrupt
        # the cause, not just "rejected": the ONNX graph could not be parsed (ONNX Runtime's InvalidProtobuf)
        assert card["last_error"].startswith(f"version {corrupt} rejected: InvalidProtobuf: ")
        assert "protobuf parsing failed" in card["last_error"]
        assert card["load_failures"] == 1
        assert "hvbuyer_model_load_failures_total 1.0" in api.get("/metrics").text
        assert api.post("/predict", json=SEED).json()["model_version"] == new
        assert api.get("/health/ready").json()["model_version"] == new

    lines = log_file.read_text().splitlines()  # the service says what it serves, once per event
    assert sum("loaded champion version 1 (onnx)" in line for line in lines) == 1, lines
    assert sum(f"swapped champion version 1 -> {new} (onnx)" in line for line in lines) == 1, lines
    rejected = [line for line in lines if f"rejected champion version {corrupt} " in line]
    assert len(rejected) == 1 and f"still serving version {new}" in rejected[0], lines


class SwapInside:
    """An ONNX session that, before its first computation, has ``swap`` run (the alias moved and the store
    refreshed), then computes as the wrapped session would: the request using it is in flight across the swap."""

    def __init__(self, session: Any, swap: Callable[[], None]) -> None:
        self.session, self.swap, self.swapped = session, swap, False

    def run(self, *args: Any, **kwargs: Any) -> Any:
        if not self.swapped:
            self.swapped = True
            self.swap()
        return self.session.run(*args, **kwargs)


def test_a_request_in_flight_during_a_swap_finishes_on_the_model_it_started_with(workspace_copy: Workspace) -> None:
    client = workspace_copy.client()
    store = ChampionStore(workspace_copy.settings.mlflow_tracking_uri)
    assert store.refresh() and store.current.version == "1"
    new = register_different_model(workspace_copy)
    expected = {version: probability(workspace_copy, version, SEED) for version in ("1", new)}
    assert abs(expected["1"] - expected[new]) > 1e-3
    app = create_app()  # the store below is the only one; only the sessions swap it
    app.state.settings, app.state.store = workspace_copy.settings, store
    rows = 1 + LARGE_BODY // len(json.dumps(SEED))  # a body scored off the event loop, on the batch session
    requests = {
        "/predict": {"json": SEED},
        "/predict?explain=3": {"json": SEED},
        "/predict/batch": {"json": {"rows": [SEED] * 3}},
        "/predict/batch (large)": {"json": {"rows": [SEED] * rows}},
        "/predict/batch?explain=2": {"json": {"rows": [SEED] * 3}},
    }
    http = TestClient(app)  # not entered: no lifespan, so no follower swapping on its own
    for path, body in requests.items():
        started = store.current
        other = new if started.version == "1" else "1"

        def swap(target: str = other) -> None:
            registry.promote(client, target)
            assert store.refresh() and store.current.version == target

        inside = SwapInside(started.session, swap)
        store.current = dataclasses.replace(started, session=inside, batch_session=inside)
        response = http.post(path.split(" ")[0], **body)
        assert inside.swapped and store.current.version == other, path  # the swap landed during the request
        assert response.status_code == 200, (path, response.text)
        answer = response.json()
        assert answer["model_version"] == started.version, (path, answer["model_version"], started.version)
        probabilities = answer["large_purchase_probability"]
        for proba in probabilities if isinstance(probabilities, list) else [probabilities]:
            assert proba == pytest.approx(expected[started.version], abs=ONNX_PARITY_TOLERANCE), (path, proba)
