"""``POST /predict/batch`` in its three forms over real HTTP (JSON rows, JSON columns, an Arrow IPC stream): the same
answers as single-row ``/predict`` within 1e-6, the same rules with one 422 listing every error, and 415 for any
other content type (on ``/predict`` too)."""

from __future__ import annotations

import io
import json

import httpx
import pyarrow as pa
import pytest

from hvbuyer_assets.core.feature_spec import BY_NAME
from hvbuyer_tests.pipeline import Workspace
from hvbuyer_tests.serving.test_endpoints import NOBODY, SEED, _feature_rows

ARROW = "application/vnd.apache.arrow.stream"
FIELDS = list(BY_NAME)


def as_columns(rows: list[dict]) -> dict[str, list]:
    """Rows as one list per field (None where a row omits it: omitted and null mean the same)."""
    return {name: [row.get(name) for row in rows] for name in FIELDS if any(name in row for row in rows)}


def as_arrow(columns: dict[str, list], schema: pa.Schema | None = None) -> bytes:
    table = pa.table(columns, schema=schema)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def post_arrow(api: httpx.Client, body: bytes) -> httpx.Response:
    return api.post("/predict/batch", content=body, headers={"content-type": ARROW})


def test_every_form_equals_single_row_predictions(api: httpx.Client, built: Workspace) -> None:
    rows = _feature_rows(built, 40) + [SEED, NOBODY, {**SEED, "region": "  east "}]
    singles = [api.post("/predict", json=row).json()["large_purchase_probability"] for row in rows]
    columns = as_columns(rows)
    answers = {
        "rows": api.post("/predict/batch", json={"rows": rows}),
        "columns": api.post("/predict/batch", json={"columns": columns}),
        "arrow": post_arrow(api, as_arrow(columns)),
        "arrow, int ages and a dictionary region": post_arrow(
            api,
            as_arrow(
                {**columns, "age": [None if a is None else int(a) for a in columns["age"]]},
                pa.schema(
                    [
                        (
                            n,
                            pa.int64()
                            if n == "age"
                            else pa.dictionary(pa.int8(), pa.string())
                            if n == "region"
                            else pa.float64(),
                        )
                        for n in columns
                    ]
                ),
            ),
        ),
    }
    for form, response in answers.items():
        assert response.status_code == 200, (form, response.text)
        assert response.json()["large_purchase_probability"] == pytest.approx(singles, abs=1e-6), form
        assert response.json()["model_version"] == built.champion_version()


def test_every_form_refuses_with_one_422_listing_every_error(api: httpx.Client) -> None:
    rows = [SEED, {**SEED, "age": 121, "region": "Atlantis"}, {**SEED, "refund_rate": 1.5}, {**SEED, "age": True}]
    by_rows = api.post("/predict/batch", json={"rows": rows})
    assert by_rows.status_code == 422
    expected = {(tuple(i["loc"]), i["type"]) for i in by_rows.json()["detail"]}
    assert {loc[-1] for loc, _ in expected} == {"age", "region", "refund_rate"}  # every error, one answer

    def as_columnar(loc: tuple) -> tuple:  # rows locate by row, then field; columns by field, then row
        return ("body", "columns", loc[3], loc[2])

    wanted = {(as_columnar(loc), kind) for loc, kind in expected}
    by_columns = api.post("/predict/batch", json={"columns": as_columns(rows)})
    assert (
        by_columns.status_code == 422 and {(tuple(i["loc"]), i["type"]) for i in by_columns.json()["detail"]} == wanted
    )
    # Arrow cannot hold True among ages: a NaN age (a float column) is its own invalid value
    arrow_rows = [
        SEED,
        {**SEED, "age": 121, "region": "Atlantis"},
        {**SEED, "refund_rate": 1.5},
        {**SEED, "age": float("nan")},
    ]
    by_arrow = post_arrow(api, as_arrow(as_columns(arrow_rows)))
    assert by_arrow.status_code == 422
    found = {(tuple(i["loc"]), i["type"]) for i in by_arrow.json()["detail"]}
    assert found == {(("body", "columns", "age", 3), "finite_number"), *(w for w in wanted if w[0][3] != 3)}


@pytest.mark.parametrize(
    ("body", "issue"),
    [
        ({"columns": {"age": [35], "region": ["East"]}}, (["body", "columns", "loyalty_points"], "missing")),
        ({"columns": {**as_columns([SEED]), "colour": ["red"]}}, (["body", "columns", "colour"], "extra_forbidden")),
        (
            {"columns": {"age": [35, 36], "region": ["East"], "loyalty_points": [1]}},
            (["body", "columns"], "value_error"),
        ),
        (
            {"columns": {"age": 35, "region": ["East"], "loyalty_points": [1]}},
            (["body", "columns", "age"], "list_type"),
        ),
        ({"columns": {"age": [], "region": [], "loyalty_points": []}}, (["body", "columns"], "value_error")),
    ],
)
def test_malformed_columns_are_named(api: httpx.Client, body: dict, issue: tuple) -> None:
    for response in (
        api.post("/predict/batch", json=body),
        post_arrow(api, as_arrow(body["columns"]))
        if all(isinstance(v, list) for v in body["columns"].values())
        and len({len(v) for v in body["columns"].values()}) == 1
        else None,
    ):
        if response is None:
            continue
        assert response.status_code == 422, response.text
        assert [i["loc"] for i in response.json()["detail"] if i["type"] == issue[1]] == [issue[0]], response.text


def test_an_arrow_body_that_is_not_a_stream_is_a_422(api: httpx.Client) -> None:
    response = post_arrow(api, b"not arrow at all")
    assert response.status_code == 422 and "not an Arrow IPC stream" in response.json()["detail"][0]["msg"]


JSON_BODY = json.dumps(SEED).encode()


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "text/plain"},
        {"content-type": "application/x-www-form-urlencoded"},
        {"content-type": "multipart/form-data; boundary=x"},
        {"content-type": "application/xml"},
        {"content-type": "image/png"},
        {},  # no type at all
    ],
    ids=["text", "form", "multipart", "xml", "png", "none"],
)
@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
def test_other_content_types_are_415_naming_the_expected_one(api: httpx.Client, path: str, headers: dict) -> None:
    body = JSON_BODY if path == "/predict" else json.dumps({"rows": [SEED]}).encode()
    response = api.post(path, content=body, headers=headers)
    assert response.status_code == 415, response.text
    assert "send application/json" in response.json()["detail"]
    if path == "/predict/batch":
        assert "application/vnd.apache.arrow.stream" in response.json()["detail"]
    charset = api.post(path, content=body, headers={"content-type": "application/json; charset=utf-8"})
    assert charset.status_code == 200  # parameters of the accepted type are fine
