"""The prediction API over real HTTP: the champion answers, bad input gets a clear 422, promotions switch the
served version without a restart, and API features equal batch features (no training/serving skew)."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from hvbuyer_assets import registry
from hvbuyer_assets.core import features
from hvbuyer_tests.pipeline import Workspace, read_frame
from hvbuyer_tests.serving.conftest import REPO, serve

SEED_EXAMPLE = {"age": 35, "region": "East", "loyalty_points": 1200}


@pytest.fixture(scope="module")
def api(built: Workspace):
    with serve(built.root) as client:
        yield client


def test_seed_example_answers_with_the_champion(api, built: Workspace) -> None:
    response = api.post("/predict", json=SEED_EXAMPLE)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"large_purchase_probability", "model_version"}
    assert 0.0 < body["large_purchase_probability"] < 1.0
    assert body["model_version"] == built.champion_version()
    assert api.get("/health").json() == {"status": "ok", "model_version": built.champion_version()}


def test_api_equals_batch_scores_for_the_same_features(api, built: Workspace) -> None:
    feats = read_frame(built.root / "features" / "customer_features.parquet")
    scores = read_frame(built.root / "scores" / "customer_scores.parquet").set_index("customer_id")
    sample = feats[feats["n_completed"] > 0].head(5)
    for customer_id, row in sample.iterrows():
        payload = {name: (None if pd.isna(row[name]) else float(row[name])) for name in features.FEATURE_NUMERIC}
        payload["region"] = str(row["region"])
        payload = {k: v for k, v in payload.items() if v is not None}
        got = api.post("/predict", json=payload).json()["large_purchase_probability"]
        assert got == pytest.approx(scores.loc[customer_id, "large_purchase_probability"], abs=1e-12)


def test_omitted_behaviour_means_no_history(api, built: Workspace) -> None:
    explicit = {**SEED_EXAMPLE, **{k: v for k, v in features.NO_HISTORY.items() if not np.isnan(v)}}
    assert api.post("/predict", json=explicit).json() == api.post("/predict", json=SEED_EXAMPLE).json()


def test_region_spelling_is_normalised(api) -> None:
    a = api.post("/predict", json=SEED_EXAMPLE).json()
    b = api.post("/predict", json={**SEED_EXAMPLE, "region": "  east "}).json()
    assert a == b


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**SEED_EXAMPLE, "age": -3}, "age"),
        ({**SEED_EXAMPLE, "age": "old"}, "age"),
        ({**SEED_EXAMPLE, "loyalty_points": -1}, "loyalty_points"),
        ({**SEED_EXAMPLE, "favourite_colour": "red"}, "favourite_colour"),
        ({**SEED_EXAMPLE, "refund_rate": 2}, "refund_rate"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(api, payload: dict, field: str) -> None:
    response = api.post("/predict", json=payload)
    assert response.status_code == 422
    assert any(field in error["loc"] for error in response.json()["detail"])


def test_promotion_switches_the_served_version_without_restart(workspace_copy: Workspace) -> None:
    with serve(workspace_copy.root, poll_seconds=0.2) as client:
        assert client.post("/predict", json=SEED_EXAMPLE).json()["model_version"] == "1"
        mlflow_client = workspace_copy.client()
        source = mlflow_client.get_model_version(registry.MODEL_NAME, "1")
        new = registry.register(mlflow_client, source.source, source.run_id, {"test": "copy of v1"})
        registry.promote(mlflow_client, new)
        deadline = time.monotonic() + 30
        while client.post("/predict", json=SEED_EXAMPLE).json()["model_version"] != new:
            assert time.monotonic() < deadline, "the API did not follow the champion alias"
            time.sleep(0.1)


def test_serving_does_not_import_dagster() -> None:
    code = "import sys, hvbuyer_serving.app; print('dagster' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
