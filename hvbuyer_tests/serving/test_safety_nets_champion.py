"""The service's safety nets around a champion, over real HTTP against a real uvicorn process and a real MLflow
registry: the sklearn fallback without a verified ONNX artifact; a version whose ONNX graph disagrees with its
sklearn pipeline is rejected (and polling does not retry it, ``/admin/reload`` does); customer look-ups before
the first scoring, while a data file is unreadable and after a re-scoring; strict request types and ranges."""

from __future__ import annotations

import copy
import os
import sqlite3
import tempfile
from pathlib import Path

import httpx
import mlflow
import pytest

from hvbuyer_assets.settings import ONLINE_STORE_FILE
from hvbuyer_tests.pipeline import Workspace, read_frame
from hvbuyer_tests.serving.service import ADMIN_TOKEN, launch, wait_until

SEED = {"age": 35, "region": "East", "loyalty_points": 1200}
ONNX_TAGS = ("hvbuyer.onnx_artifact_uri", "hvbuyer.onnx_verified", "hvbuyer.onnx_max_abs_diff")


def _copy_of_v1(workspace: Workspace, drop: tuple[str, ...] = (), **tags: str) -> str:
    """Register the champion v1's model again as a new version, with some tags removed or replaced."""
    from hvbuyer_assets import registry

    client = workspace.client()
    v1 = client.get_model_version(registry.MODEL_NAME, "1")
    kept = {k: v for k, v in v1.tags.items() if k not in drop and k != "hvbuyer.promotion"}
    return registry.register(client, v1.source, v1.run_id, {**kept, **tags})


def _onnx_of_another_forest(workspace: Workspace) -> str:
    """A valid ONNX graph of a *different* forest (v1's first 3 trees), logged in its own MLflow run: what a
    mismatched upload would look like. Returns its runs:/ URI."""
    from hvbuyer_assets import registry
    from hvbuyer_assets.core import model

    pipeline = copy.deepcopy(registry.load_version(workspace.settings.mlflow_tracking_uri, "1"))
    forest = pipeline.steps[-1][1]
    forest.estimators_ = forest.estimators_[:3]
    forest.n_estimators = 3
    client = workspace.client()
    experiment = client.create_experiment("mismatch", artifact_location=str(workspace.root / "mismatch_artifacts"))
    run = client.create_run(experiment)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(model.to_onnx(pipeline))
        client.log_artifact(run.info.run_id, str(path), artifact_path="onnx")
    client.set_terminated(run.info.run_id)
    return f"runs:/{run.info.run_id}/onnx/model.onnx"


def _card(api: httpx.Client) -> dict:
    return api.get("/model").json()


def test_sklearn_fallback_onnx_mismatch_rejected_and_admin_reload_retries(
    workspace_copy: Workspace, tmp_path: Path
) -> None:
    from hvbuyer_assets import registry

    client = workspace_copy.client()
    with launch(
        workspace_copy.root, tmp_path / "service.log", wait_for="/health/ready", HVBUYER_ADMIN_TOKEN=ADMIN_TOKEN
    ) as service:
        api = service.client
        onnx_answer = api.post("/predict", json=SEED).json()
        assert onnx_answer["model_version"] == "1" and _card(api)["runtime"] == "onnx"

        # A version registered without a verified ONNX artifact: served with its sklearn pipeline, and /model says so.
        plain = _copy_of_v1(workspace_copy, drop=ONNX_TAGS)
        registry.promote(client, plain)
        try:
            wait_until(lambda: _card(api)["version"] == plain, f"v{plain} to be served", timeout=300)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {_card(api)}\n{service.log()[-1500:]}") from None
        card = _card(api)
        assert card["runtime"] == "sklearn" and "no ONNX artifact" in card["runtime_note"]
        assert api.get("/health/ready").json() == {"status": "ready", "model_version": plain, "runtime": "sklearn"}
        answer = api.post("/predict", json=SEED).json()
        assert answer["model_version"] == plain
        # the same forest: sklearn and its verified ONNX graph agree within the parity tolerance
        assert answer["large_purchase_probability"] == pytest.approx(
            onnx_answer["large_purchase_probability"], abs=1e-4
        )
        assert f'hvbuyer_model_info{{runtime="sklearn",version="{plain}"}} 1.0' in api.get("/metrics").text

        # A version whose "verified" ONNX graph is another forest: the probe rows disagree, it is never served.
        mismatched = _copy_of_v1(
            workspace_copy,
            **{
                registry.ONNX_URI_TAG: _onnx_of_another_forest(workspace_copy),
                registry.ONNX_VERIFIED_TAG: "true",
            },
        )
        registry.promote(client, mismatched)
        wait_until(lambda: _card(api)["rejected_version"] == mismatched, "the mismatched version's rejection", 300)
        card = _card(api)
        assert card["version"] == plain and card["load_failures"] == 1
        assert card["last_error"].startswith(
            f"version {mismatched} rejected: ValueError: ONNX and sklearn disagree on the probe rows (max |diff| "
        )
        assert api.post("/predict", json=SEED).json()["model_version"] == plain

        # Polling does not retry a rejected version, even after its tags change...
        client.set_model_version_tag(registry.MODEL_NAME, mismatched, registry.ONNX_VERIFIED_TAG, "false")
        checked = _card(api)["checked_at"]
        wait_until(lambda: _card(api)["checked_at"] != checked, "one more poll")
        checked = _card(api)["checked_at"]
        wait_until(lambda: _card(api)["checked_at"] != checked, "another poll")
        assert _card(api)["version"] == plain and _card(api)["load_failures"] == 1

        # ...an operator's /admin/reload does: now served with its own sklearn pipeline.
        reload = api.post("/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert reload.status_code == 200
        assert reload.json() == {
            "changed": True,
            "model_version": mismatched,
            "runtime": "sklearn",
            "last_error": None,
            "rejected_version": None,
        }
        card = _card(api)
        assert card["version"] == mismatched and "ONNX parity check failed" in card["runtime_note"]
        assert api.post("/predict", json=SEED).json()["model_version"] == mismatched


def _replace(path: Path, content: bytes) -> None:
    """Replace a file atomically (as the IO manager does), so the service never reads half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)


def _score(workspace: Workspace) -> None:
    """A real scoring run: the ``customer_scores`` asset with the current champion."""
    import dagster as dg

    from hvbuyer_assets.definitions import ALL_ASSETS, build_resources

    try:
        result = dg.materialize(
            ALL_ASSETS, selection=["customer_scores"], resources=build_resources(workspace.settings)
        )
    finally:
        mlflow.end_run()
    assert result.success


def test_customer_lookup_before_scoring_while_unreadable_and_after_a_rescoring(
    workspace_copy: Workspace, tmp_path: Path
) -> None:
    """The lookup reads the online store (the default: SQLite under the data dir), one key per request."""
    scores = workspace_copy.root / "scores" / "customer_scores.parquet"
    store = workspace_copy.root / ONLINE_STORE_FILE
    customer = str(read_frame(scores)["customer_id"].iloc[7])
    for leftover in store.parent.glob(store.name + "*"):
        leftover.unlink()  # as before the first scoring run
    with launch(workspace_copy.root, tmp_path / "service.log", wait_for="/health/ready") as service:
        api = service.client
        url = f"/customers/{customer}/prediction"
        before = api.get(url)
        assert before.status_code == 503 and "no customer scores yet in the online store" in before.json()["detail"]
        assert api.post("/predict", json=SEED).status_code == 200  # the model itself is served

        _score(workspace_copy)
        first = api.get(url).json()  # the write committed: the very next lookup answers (no re-read delay)
        assert first["model_version"] == "1" and first["features"]["region"]

        # The store becomes unreadable: 503 naming the store, never 500 (and no stale answer); then readable again.
        with sqlite3.connect(store) as con:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every committed page in the file itself
        good = store.read_bytes()
        _replace(store, b"SQLite format 3\x00 but not a database" + b"\x00" * 4096)
        unreadable = api.get(url)
        assert unreadable.status_code == 503
        assert unreadable.json()["detail"].startswith(f"the online store sqlite:///{store} cannot be read")
        _replace(store, good)
        assert api.get(url).json() == first

        # A re-scoring commits a new version: same score, a later scored_at, no restart.
        _score(workspace_copy)
        latest = api.get(url).json()
        assert latest["model_version"] == "1" and latest["scored_at"] > first["scored_at"]
        assert latest["large_purchase_probability"] == pytest.approx(first["large_purchase_probability"], abs=1e-12)

        statuses = [line for line in api.get("/metrics").text.splitlines() if "/customers/{customer_id}" in line]
        assert not any('status="500"' in line for line in statuses), statuses


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**SEED, "age": 121}, "age"),
        ({**SEED, "age": True}, "age"),  # a boolean is not an age (pydantic's lax mode would make it 1.0)
        ({**SEED, "age": "35"}, "age"),  # nor is a string: numbers only
        ({**SEED, "loyalty_points": 1e39}, "loyalty_points"),  # beyond float32: would reach the model as inf
        ({**SEED, "total_spend": -1e39}, "total_spend"),
        ({**SEED, "n_completed": False}, "n_completed"),
    ],
)
def test_wrong_types_and_values_beyond_range_are_422_not_coerced(api: httpx.Client, payload: dict, field: str) -> None:
    single = api.post("/predict", json=payload)
    assert single.status_code == 422, single.text
    assert [issue["loc"] for issue in single.json()["detail"]] == [["body", field]]
    batch = api.post("/predict/batch", json={"rows": [SEED, payload]})
    assert batch.status_code == 422, batch.text
    assert [issue["loc"] for issue in batch.json()["detail"]] == [["body", "rows", 1, field]]


def test_the_largest_float32_value_is_still_accepted(api: httpx.Client) -> None:
    largest = float.fromhex("0x1.fffffep+127")  # numpy.finfo(numpy.float32).max
    response = api.post("/predict", json={**SEED, "loyalty_points": largest})
    assert response.status_code == 200 and 0 <= response.json()["large_purchase_probability"] <= 1
    assert api.post("/predict", json={**SEED, "age": 120}).status_code == 200
