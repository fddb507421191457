"""Hot swap under load: a new champion is swapped in while clients hammer ``/predict`` (zero failed requests),
and a corrupt new version is rejected while the old one keeps serving (visible in /model and /metrics)."""

from __future__ import annotations

import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import mlflow

from hvbuyer_assets import registry
from hvbuyer_tests.pipeline import Workspace
from hvbuyer_tests.serving.service import serve

SEED = {"age": 35, "region": "East", "loyalty_points": 1200}


class LoadLoop:
    """Client threads sending /predict back to back; records every outcome."""

    def __init__(self, base_url: str, threads: int = 4) -> None:
        self.base_url = base_url
        self.outcomes: Counter[tuple[int, str | None]] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            while not self._stop.is_set():
                try:
                    response = client.post("/predict", json=SEED)
                    version = response.json().get("model_version") if response.status_code == 200 else None
                    outcome = (response.status_code, version)
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.errors.append(repr(exc))
                    continue
                with self._lock:
                    self.outcomes[outcome] += 1

    def __enter__(self) -> LoadLoop:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


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
        with LoadLoop(str(api.base_url)) as load:
            _wait_for(lambda: sum(load.outcomes.values()) > 50, "the load loop to run")
            new = _copy_of(client, "1")
            registry.promote(client, new)
            _wait_for(lambda: (200, new) in load.outcomes, "the new champion to be served")
            served_before = sum(load.outcomes.values())
            _wait_for(lambda: sum(load.outcomes.values()) > served_before + 50, "more requests on the new one")

            corrupt = _corrupt_version(workspace_copy)
            registry.promote(client, corrupt)
            _wait_for(lambda: api.get("/model").json()["rejected_version"] == corrupt, "the corrupt version rejection")
            rejected_at = sum(load.outcomes.values())
            _wait_for(lambda: sum(load.outcomes.values()) > rejected_at + 50, "requests after the rejection")
        assert load.errors == []
        assert set(load.outcomes) <= {(200, "1"), (200, new)}, load.outcomes  # zero failed requests
        assert load.outcomes[(200, new)] > 0 and (200, corrupt) not in load.outcomes

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
