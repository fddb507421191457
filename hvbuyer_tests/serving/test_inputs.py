"""The API's DataFrame-free input path gives exactly the model inputs of the one feature definition
(``features.serving_frame`` + ``model.onnx_inputs``), for single rows and batches alike."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hvbuyer_assets.core import features, model
from hvbuyer_assets.core.feature_spec import FEATURES, REQUIRED_FIELDS
from hvbuyer_serving import inputs
from hvbuyer_serving.schemas import BatchRequest, PredictRequest

COLUMNS = features.FEATURE_NUMERIC + features.FEATURE_CATEGORICAL


def _records(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    spellings = ["East", "  east ", "NORTH", "south  west", "", None, "Central"]
    records = []
    for _ in range(n):
        record: dict = {}
        for name in features.FEATURE_NUMERIC:
            if rng.random() < 0.5:
                high = {"share_large": 1.0, "refund_rate": 1.0, "age": 120.0}.get(name, 2000.0)
                record[name] = float(rng.uniform(0, high)) if rng.random() < 0.8 else None
        if rng.random() < 0.3:
            record["age"] = float(rng.choice([0, 5, 12.9, 13, 110, 110.5, 120]))  # outside the cleaning range too
        if rng.random() < 0.8:
            record["region"] = spellings[int(rng.integers(len(spellings)))]
        records.append({name: None for name in REQUIRED_FIELDS} | record)  # required: sent, maybe null
    return records


def _assert_same_feed(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert list(got) == list(expected)
    for name, want in expected.items():
        assert got[name].shape == want.shape and got[name].dtype == want.dtype, name
        if want.dtype == object:
            assert got[name].tolist() == want.tolist(), name
        else:
            np.testing.assert_array_equal(got[name], want, err_msg=name)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batch_inputs_equal_the_feature_definition(seed: int) -> None:
    records = _records(300, seed)
    rows = [PredictRequest.model_validate(r) for r in records]
    expected = model.onnx_inputs(features.serving_frame(records), COLUMNS)
    _assert_same_feed(inputs.onnx_feed(inputs.numeric_matrix(rows), inputs.regions(rows), COLUMNS), expected)


def test_single_row_path_equals_the_batch_path() -> None:
    for record in _records(200, 7):
        row = PredictRequest.model_validate(record)
        expected = model.onnx_inputs(features.serving_frame([record]), COLUMNS)
        np.testing.assert_array_equal(inputs.row_matrix(row), inputs.numeric_matrix([row]))
        _assert_same_feed(inputs.onnx_feed(inputs.row_matrix(row), inputs.regions([row]), COLUMNS), expected)


@pytest.mark.parametrize("seed", [4, 5])
def test_fast_batch_parser_equals_the_pydantic_path(seed: int) -> None:
    records = [{k: v for k, v in r.items() if v is not None or k in REQUIRED_FIELDS} for r in _records(500, seed)]
    records[0]["age"] = 40  # JSON integers are numbers too
    body = json.dumps({"rows": records}).encode()
    parsed = inputs.fast_batch(body, 10_000)
    assert parsed is not None
    rows = BatchRequest.model_validate_json(body).rows
    np.testing.assert_array_equal(parsed[0], inputs.numeric_matrix(rows))
    assert parsed[1] == inputs.regions(rows)


@pytest.mark.parametrize(
    "rows",
    [
        [{"age": -1}],
        [{"age": 121}],
        [{"refund_rate": 1.5}],
        [{"age": "35"}],  # lax pydantic coercion: decided by pydantic, not the fast path
        [{"age": True}],
        [{"age": 1e400}],
        [{"region": 5}],
        [{"region": "x" * 65}],
        [{"favourite_colour": "red"}],
        [{"age": 35, "region": "East"}],  # a required field missing: pydantic names it
        [],
        [[1, 2]],
    ],
)
def test_fast_batch_parser_leaves_anything_unusual_to_pydantic(rows: list) -> None:
    assert inputs.fast_batch(json.dumps({"rows": rows}).encode(), 10_000) is None
    assert inputs.fast_batch(b'{"rows": [{"age": NaN}]}', 10_000) is None
    assert inputs.fast_batch(json.dumps({"rows": [{}], "extra": 1}).encode(), 10_000) is None
    assert inputs.fast_batch(json.dumps({"rows": [{}] * 3}).encode(), 2) is None


def test_request_model_is_the_feature_declaration() -> None:
    schema = PredictRequest.model_json_schema()
    assert list(schema["properties"]) == [f.name for f in FEATURES]  # one field per declared feature, in order
    for feature in FEATURES:
        prop = schema["properties"][feature.name]
        assert prop["description"] == feature.description
        accepted = prop["anyOf"][0]
        if feature.kind == "categorical":
            assert accepted["type"] == "string" and accepted["maxLength"] == feature.max_length
        else:
            assert accepted["type"] == "number"
            assert (feature.ge is None) or accepted["minimum"] == feature.ge, feature.name
            assert (feature.le is None) or accepted["maximum"] == feature.le, feature.name
