"""``?explain=K`` over real HTTP on the built champion: the K largest exact TreeSHAP contributions, additive
(expected value + contributions == the forest's probability within 1e-6, and that probability is the served one
within the ONNX parity tolerance) on ``/predict``, ``/predict/batch`` and ``/customers/{id}/prediction``; and
reasons stored by the scoring answering a look-up."""

from __future__ import annotations

import httpx
import pytest

from hvbuyer_assets import registry
from hvbuyer_assets.core import model
from hvbuyer_assets.core.features import FEATURE_COLUMNS as FEATURE_NAMES
from hvbuyer_assets.core.model import ONNX_PARITY_TOLERANCE
from hvbuyer_serving.explain import FEATURE_COUNT, explain_record, stored_reasons
from hvbuyer_serving.online_store import open_store, score_records
from hvbuyer_tests.pipeline import Workspace, read_frame
from hvbuyer_tests.serving.test_endpoints import SEED, _feature_rows


def _additive(explanation: dict, k: int) -> None:
    assert len(explanation["top"]) == k
    sizes = [abs(r["contribution"]) for r in explanation["top"]]
    assert sizes == sorted(sizes, reverse=True)
    total = explanation["expected_value"] + sum(r["contribution"] for r in explanation["top"]) + explanation["others"]
    assert total == pytest.approx(explanation["forest_probability"], abs=1e-6)


def test_predict_explains_with_contributions_adding_up_to_the_probability(api: httpx.Client, built: Workspace) -> None:
    rows = [*_feature_rows(built, 5), SEED]
    for row in rows:
        answer = api.post("/predict", params={"explain": FEATURE_COUNT}, json=row).json()
        explanation = answer["explanation"]
        _additive(explanation, FEATURE_COUNT)
        assert explanation["others"] == pytest.approx(0, abs=1e-12)  # every feature shown
        assert explanation["forest_probability"] == pytest.approx(
            answer["large_purchase_probability"], abs=ONNX_PARITY_TOLERANCE
        )
        assert {r["feature"] for r in explanation["top"]} == set(FEATURE_NAMES)  # K = all: each feature once
    top3 = api.post("/predict", params={"explain": 3}, json=SEED).json()["explanation"]
    _additive(top3, 3)
    every = api.post(f"/predict?explain={FEATURE_COUNT}", json=SEED).json()["explanation"]["top"]
    region = next(r for r in every if r["feature"] == "region")
    assert region["value"] == "East"
    assert "explanation" not in api.post("/predict", json=SEED).json()  # only when asked


def test_batch_explanations_equal_single_row_ones(api: httpx.Client, built: Workspace) -> None:
    rows = [*_feature_rows(built, 6), SEED]
    batch = api.post("/predict/batch", params={"explain": 4}, json={"rows": rows}).json()
    assert len(batch["explanations"]) == len(rows)
    for row, explanation in zip(rows, batch["explanations"], strict=True):
        single = api.post("/predict", params={"explain": 4}, json=row).json()["explanation"]
        assert explanation == single  # the same inputs, the same arithmetic
        _additive(explanation, 4)


def test_a_customer_lookup_explains_its_stored_score(api: httpx.Client, built: Workspace) -> None:
    scores = read_frame(built.root / "scores" / "customer_scores.parquet")
    row = scores.iloc[11]
    answer = api.get(f"/customers/{row['customer_id']}/prediction", params={"explain": 5}).json()
    _additive(answer["explanation"], 5)
    assert answer["explanation"]["forest_probability"] == pytest.approx(answer["large_purchase_probability"], abs=1e-6)


@pytest.mark.parametrize("k", ["0", str(FEATURE_COUNT + 1), "two", "-1"])
def test_an_impossible_k_is_a_422_naming_the_parameter(api: httpx.Client, k: str) -> None:
    for response in (
        api.post(f"/predict?explain={k}", json=SEED),
        api.post(f"/predict/batch?explain={k}", json={"rows": [SEED]}),
        api.get(f"/customers/C0000001/prediction?explain={k}"),
    ):
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["query", "explain"]
    too_many = api.post("/predict/batch?explain=1", json={"rows": [SEED] * 1001})
    assert too_many.status_code == 422 and "up to 1,000 rows" in too_many.json()["detail"][0]["msg"]


def test_reasons_stored_by_the_scoring_answer_a_lookup(built: Workspace, tmp_path) -> None:
    """``customer_scores(reasons=K)``'s path on a few customers: explained, stored in the online store, and a
    look-up with ``?explain=k`` (k <= K) answers from the record without the model."""
    feats = read_frame(built.root / "features" / "customer_features.parquet").head(30)
    version = built.champion_version()
    pipeline = registry.load_version(built.settings.mlflow_tracking_uri, version)
    probabilities = model.predict_proba(pipeline, feats)
    store = open_store(f"sqlite:///{tmp_path}/online.db")
    store.write(score_records(feats, probabilities, version, stored_reasons(pipeline, feats, 6)), {"scored_at": "t"})
    record = store.lookup(str(feats.index[4]))
    assert len(record["reasons"]["top"]) == 6
    _additive(record["reasons"], 6)
    assert record["reasons"]["forest_probability"] == pytest.approx(probabilities[4], abs=1e-9)
    shown = explain_record(None, record, 2)  # no model needed: the stored reasons
    _additive(shown, 2)
    assert shown["top"] == record["reasons"]["top"][:2]
