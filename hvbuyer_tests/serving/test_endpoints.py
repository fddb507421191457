"""Every endpoint of the service over real HTTP (uvicorn on a loopback port): batch, customer lookup, model
card, health, metrics, admin reload auth, limits and error bodies."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from hvbuyer_assets import registry
from hvbuyer_assets.core import features
from hvbuyer_assets.core.feature_spec import REQUIRED_FIELDS
from hvbuyer_tests.pipeline import Workspace, read_frame
from hvbuyer_tests.serving.service import ADMIN_TOKEN, free_port

SEED = {"age": 35, "region": "East", "loyalty_points": 1200}
NOBODY = {"age": None, "region": None, "loyalty_points": None}  # sent, all unknown
MAX_BATCH_ROWS = 10_000  # documented batch limit
JSON = {"content-type": "application/json"}


def _feature_rows(built: Workspace, n: int) -> list[dict]:
    feats = read_frame(built.root / "features" / "customer_features.parquet").head(n)
    rows = []
    for _, row in feats.iterrows():
        payload = {
            name: None if np.isnan(row[name]) else float(row[name])
            for name in features.FEATURE_NUMERIC
            if name in REQUIRED_FIELDS or not np.isnan(row[name])
        }
        rows.append({**payload, "region": str(row["region"])})
    return rows


def test_batch_answers_in_order_like_single_calls(api: httpx.Client, built: Workspace) -> None:
    rows = _feature_rows(built, 25) + [SEED, NOBODY]
    response = api.post("/predict/batch", json={"rows": rows})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == built.champion_version()
    singles = [api.post("/predict", json=row).json()["large_purchase_probability"] for row in rows]
    assert body["large_purchase_probability"] == pytest.approx(singles, abs=1e-12)


def _batch(api: httpx.Client, rows: list[dict]) -> list[float]:
    response = api.post("/predict/batch", json={"rows": rows})
    assert response.status_code == 200
    return response.json()["large_purchase_probability"]


def test_batch_of_the_maximum_size_is_scored_and_one_more_is_refused(api: httpx.Client) -> None:
    rows = [{**SEED, "age": 20 + i % 60, "loyalty_points": i} for i in range(MAX_BATCH_ROWS)]
    ok = api.post("/predict/batch", json={"rows": rows})
    assert ok.status_code == 200 and len(ok.json()["large_purchase_probability"]) == MAX_BATCH_ROWS
    # The only call through the multi-threaded batch session: every value equals the single-row path's
    # (batches under 256 rows use the one-thread session /predict uses; a sample is also sent one by one).
    # ONNX Runtime sums the trees' float32 votes per thread, so the order of the sum differs: measured up to
    # 1.9e-8 apart; 1e-6 is far below any decision the score drives and far above float32 summation noise.
    big = ok.json()["large_purchase_probability"]
    small = [p for i in range(0, MAX_BATCH_ROWS, 200) for p in _batch(api, rows[i : i + 200])]
    assert big == pytest.approx(small, abs=1e-6)
    for i in range(0, MAX_BATCH_ROWS, 97):
        single = api.post("/predict", json=rows[i]).json()["large_purchase_probability"]
        assert big[i] == pytest.approx(single, abs=1e-6), rows[i]
    too_many = api.post("/predict/batch", json={"rows": [*rows, SEED]})
    assert too_many.status_code == 422
    assert too_many.json()["detail"][0]["loc"] == ["body", "rows"]


def test_unknown_region_is_a_422_listing_the_known_ones(api: httpx.Client) -> None:
    known = api.get("/model").json()["feature_schema"]["categorical"]["region"]
    response = api.post("/predict", json={**SEED, "region": "Atlantis"})
    assert response.status_code == 422
    (issue,) = response.json()["detail"]
    assert issue["loc"] == ["body", "region"]
    assert all(region in issue["msg"] for region in known)
    batch = api.post("/predict/batch", json={"rows": [SEED, {**SEED, "region": "Atlantis"}]})
    assert batch.status_code == 422 and batch.json()["detail"][0]["loc"] == ["body", "rows", 1, "region"]


def test_oversized_bodies_are_413_declared_or_streamed(api: httpx.Client) -> None:
    limit = 8 * 1024 * 1024
    assert api.post("/predict", content=b" " * (limit + 1), headers=JSON).status_code == 413

    def chunks():  # no Content-Length: chunked transfer, counted while streaming
        for _ in range(9):
            yield b" " * (1024 * 1024)

    response = api.post("/predict/batch", content=chunks(), headers=JSON)
    assert response.status_code == 413 and "exceeds" in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b'{"age": NaN}', b'{"rows": "x"}', b"", b'{"age": 1e400}'],
)
def test_malformed_bodies_are_422_without_stack_traces(api: httpx.Client, body: bytes) -> None:
    response = api.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "Traceback" not in response.text and ".py" not in response.text
    assert response.json()["detail"][0]["loc"][0] == "body"


def test_customer_lookup_returns_the_latest_score_and_features(api: httpx.Client, built: Workspace) -> None:
    scores = read_frame(built.root / "scores" / "customer_scores.parquet")
    feats = read_frame(built.root / "features" / "customer_features.parquet")
    row = scores.iloc[len(scores) // 2]
    response = api.get(f"/customers/{row['customer_id']}/prediction")
    assert response.status_code == 200
    body = response.json()
    assert body["customer_id"] == row["customer_id"]
    assert body["large_purchase_probability"] == pytest.approx(float(row["large_purchase_probability"]), abs=1e-12)
    assert body["model_version"] == str(row["model_version"])
    expected = feats.loc[row["customer_id"]]
    assert body["features"]["region"] == expected["region"]
    assert body["features"]["total_spend"] == pytest.approx(float(expected["total_spend"]))
    assert api.get("/customers/no-such-customer/prediction").status_code == 404


def test_model_card_describes_the_served_champion(api: httpx.Client, built: Workspace) -> None:
    card = api.get("/model").json()
    version = built.client().get_model_version(registry.MODEL_NAME, built.champion_version())
    assert card["status"] == "serving" and card["alias"] == "champion"
    assert card["version"] == built.champion_version()
    assert card["runtime"] == "onnx"  # the registration verified the ONNX graph
    assert float(card["onnx_max_abs_diff"]) <= 1e-4
    assert card["data_as_of"] == version.tags[registry.DATA_AS_OF_TAG]
    assert card["metrics"]["roc_auc"] == pytest.approx(float(version.tags["hvbuyer.holdout_roc_auc"]), abs=1e-6)
    assert card["trained_at"] and card["holdout_cutoff"]
    promotion = card["promotion"]  # the first champion: registered, promoted against no earlier version
    assert promotion["roc_auc_at_registration"] == pytest.approx(card["metrics"]["roc_auc"], abs=1e-6)
    assert promotion["compared_with"] is None and promotion["decision"].startswith("promoted")
    assert promotion["candidate_roc_auc_same_holdout"] == pytest.approx(card["metrics"]["roc_auc"], abs=1e-6)
    assert card["feature_schema"]["numeric"] == list(features.FEATURE_NUMERIC)
    assert card["last_error"] is None and card["load_failures"] == 0


def test_health_endpoints(api: httpx.Client, built: Workspace) -> None:
    assert api.get("/health/live").json() == {"status": "ok"}
    ready = api.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "model_version": built.champion_version(), "runtime": "onnx"}


def test_metrics_are_prometheus_text(api: httpx.Client, built: Workspace) -> None:
    api.post("/predict", json=SEED)
    api.post("/predict", json={"age": -1})
    response = api.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'hvbuyer_http_requests_total{endpoint="/predict",method="POST",status="200"}' in text
    assert 'hvbuyer_http_requests_total{endpoint="/predict",method="POST",status="422"}' in text
    assert 'hvbuyer_http_request_duration_seconds_bucket{endpoint="/predict",le="0.005"}' in text
    assert f'hvbuyer_model_info{{runtime="onnx",version="{built.champion_version()}"}} 1.0' in text
    assert "hvbuyer_model_load_failures_total 0.0" in text


def test_admin_reload_needs_the_bearer_token(api: httpx.Client, built: Workspace) -> None:
    assert api.post("/admin/reload").status_code == 401
    wrong = api.post("/admin/reload", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    ok = api.post("/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert ok.status_code == 200
    assert ok.json()["changed"] is False and ok.json()["model_version"] == built.champion_version()


def test_promotion_notification_reaches_the_api_or_fails_softly(api: httpx.Client) -> None:
    assert registry.notify_reload(str(api.base_url), ADMIN_TOKEN) is True
    assert registry.notify_reload(str(api.base_url), "wrong") is False
    port = free_port()  # nothing listens there: the promotion must not fail
    assert registry.notify_reload(f"http://127.0.0.1:{port}", ADMIN_TOKEN, timeout=1.0) is False


def test_openapi_documents_bodies_with_examples(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["example"] == SEED
    assert spec["components"]["schemas"]["PredictRequest"]["additionalProperties"] is False
    assert spec["components"]["schemas"]["BatchRequest"]["properties"]["rows"]["maxItems"] == MAX_BATCH_ROWS
    assert {
        "/predict",
        "/predict/batch",
        "/customers/{customer_id}/prediction",
        "/model",
        "/health/live",
        "/health/ready",
        "/metrics",
        "/admin/reload",
    } <= set(spec["paths"])


def test_an_empty_body_is_a_422_naming_each_required_field(api: httpx.Client) -> None:
    for path, body, prefix in [
        ("/predict", {}, ["body"]),
        ("/predict/batch", {"rows": [SEED, {}]}, ["body", "rows", 1]),
    ]:
        response = api.post(path, json=body)
        assert response.status_code == 422
        missing = {tuple(i["loc"]) for i in response.json()["detail"] if i["type"] == "missing"}
        assert missing == {(*prefix, name) for name in REQUIRED_FIELDS}
    assert api.post("/predict", json=NOBODY).status_code == 200  # sent as unknown: scored


def test_every_invalid_field_is_reported_in_one_422(api: httpx.Client) -> None:
    bad = {"age": -3, "region": "Atlantis", "loyalty_points": "many", "refund_rate": 2, "favourite_colour": "red"}
    response = api.post("/predict", json=bad)
    assert response.status_code == 422
    assert {tuple(i["loc"]) for i in response.json()["detail"]} == {("body", name) for name in bad}
    rows = [SEED, {**SEED, "age": 500}, {**SEED, "region": "Atlantis", "n_failed": -1}]
    response = api.post("/predict/batch", json={"rows": rows})
    assert response.status_code == 422
    assert {tuple(i["loc"]) for i in response.json()["detail"]} == {
        ("body", "rows", 1, "age"),
        ("body", "rows", 2, "region"),
        ("body", "rows", 2, "n_failed"),
    }


def test_plots_of_the_asset_metadata_are_served_by_name_and_nothing_else(api: httpx.Client, built: Workspace) -> None:
    """`GET /plots/{name}`: the PNGs the build's assets attached (the Dagster UI shows them inline from here)."""
    stored = sorted((built.root / "plots").glob("*.png"))
    assert len(stored) >= 5  # ROC, calibration, lift, drift, score histogram
    for path in stored:
        response = api.get(f"/plots/{path.name}")
        assert response.status_code == 200, path.name
        assert response.headers["content-type"] == "image/png"
        assert response.content == path.read_bytes()
    assert api.get(f"/plots/{'0' * 32}.png").status_code == 404  # a plot name, no such plot
    for name in ("..%2Fmlflow.db", "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", stored[0].stem, f"{stored[0].stem}.PNG"):
        assert api.get(f"/plots/{name}").status_code in (404, 422), name  # only plot names, only under plots/
