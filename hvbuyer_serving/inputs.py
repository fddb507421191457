"""Validated requests -> model inputs without a DataFrame: the rules of ``features.serving_frame`` (the one
feature definition) applied to a (rows x features) float64 matrix in a few vectorised numpy operations.

``hvbuyer_tests/serving/test_inputs.py`` proves the result equals ``model.onnx_inputs(serving_frame(rows))``.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import pydantic_core

from hvbuyer_assets.core import features
from hvbuyer_assets.core.cleaning import AGE_MAX, AGE_MIN, normalise_region_value
from hvbuyer_serving.schemas import PredictRequest

NUMERIC: tuple[str, ...] = features.FEATURE_NUMERIC
POSITION = {name: i for i, name in enumerate(NUMERIC)}
_FILL = np.array([features.NO_HISTORY.get(name, np.nan) for name in NUMERIC])
_HAS_FILL = ~np.isnan(_FILL)
_AGE, _POINTS, _TENURE = POSITION["age"], POSITION["loyalty_points"], POSITION["tenure_days"]
_values = operator.attrgetter(*NUMERIC)


@functools.lru_cache(maxsize=4096)
def normalised_region(value: str | None) -> str:
    """``cleaning.normalise_region`` for one value, cached (the same code path as the pipeline)."""
    return normalise_region_value(value)


def numeric_matrix(rows: Sequence[Any]) -> np.ndarray:
    """(n, len(NUMERIC)) float64 from objects with the feature attributes (None -> NaN), serving rules applied:
    omitted behaviour = no history, age outside [AGE_MIN, AGE_MAX] and negative points -> NaN, tenure >= 0."""
    return serving_rules(np.array([_values(row) for row in rows], dtype=np.float64).reshape(len(rows), len(NUMERIC)))


def serving_rules(matrix: np.ndarray) -> np.ndarray:
    """The rules of ``features.serving_frame`` on a raw (n, len(NUMERIC)) float64 matrix (NaN = omitted)."""
    matrix = np.where(np.isnan(matrix) & _HAS_FILL, _FILL, matrix)
    age = matrix[:, _AGE]
    matrix[:, _AGE] = np.where((age < AGE_MIN) | (age > AGE_MAX), np.nan, age)
    matrix[:, _POINTS] = np.where(matrix[:, _POINTS] < 0, np.nan, matrix[:, _POINTS])
    matrix[:, _TENURE] = np.where(matrix[:, _TENURE] < 0, 0.0, matrix[:, _TENURE])
    return matrix


_FILL_AT = [(i, float(_FILL[i])) for i in np.flatnonzero(_HAS_FILL)]


def row_matrix(row: Any) -> np.ndarray:
    """:func:`numeric_matrix` of one row in plain Python (a dozen numpy calls cost more than the model)."""
    values = list(_values(row))
    for i, fill in _FILL_AT:
        if values[i] is None:
            values[i] = fill
    age = values[_AGE]
    if age is not None and not AGE_MIN <= age <= AGE_MAX:
        values[_AGE] = None
    if values[_POINTS] is not None and values[_POINTS] < 0:
        values[_POINTS] = None
    if values[_TENURE] is not None and values[_TENURE] < 0:
        values[_TENURE] = 0.0
    return np.array([values], dtype=np.float64)


def regions(rows: Sequence[Any]) -> list[str]:
    """Normalised region of each row ("Unknown" when missing)."""
    return [normalised_region(row.region) for row in rows]


def onnx_feed(matrix: np.ndarray, region: Sequence[str], columns: Sequence[str]) -> dict[str, np.ndarray]:
    """The ONNX Runtime feed for a model's input ``columns``: (n, 1) float32 numerics, (n, 1) str region."""
    transposed = np.ascontiguousarray(matrix.T, dtype=np.float32)[:, :, None]  # feature i: (n, 1), contiguous
    return {
        name: np.array(region, dtype=object).reshape(-1, 1)
        if name in features.FEATURE_CATEGORICAL
        else transposed[POSITION[name]]
        for name in columns
    }


_NUMBER_TYPES = {int, float, type(None)}
_REGION_TYPES = {str, type(None)}


def _bounds(name: str) -> tuple[float | None, float | None, int | None]:
    ge = le = max_length = None
    for item in PredictRequest.model_fields[name].metadata:
        ge = getattr(item, "ge", ge)
        le = getattr(item, "le", le)
        max_length = getattr(item, "max_length", max_length)
    return ge, le, max_length


_BOUNDS = {name: _bounds(name) for name in PredictRequest.model_fields}
_FIELDS = frozenset(PredictRequest.model_fields)


def fast_batch(body: bytes, max_rows: int) -> tuple[np.ndarray, list[str]] | None:
    """``(numeric_matrix, regions)`` of a plainly valid ``{"rows": [...]}`` body, built column by column in numpy
    with no model object per row; None for anything else (the caller then validates with pydantic, so clients
    get its exact errors and its lax coercions, e.g. numeric strings).

    "Plainly valid": known fields only, numbers or null for numerics within the schema's bounds, strings or null
    within the length limit for region, 1..max_rows rows. ``test_inputs.py`` proves it equals the pydantic path.
    """
    try:
        data = pydantic_core.from_json(body, allow_inf_nan=False)
    except ValueError:
        return None
    if type(data) is not dict or data.keys() != {"rows"}:
        return None
    rows = data["rows"]
    if type(rows) is not list or not 1 <= len(rows) <= max_rows or set(map(type, rows)) != {dict}:
        return None
    present = set().union(*rows)
    if not present <= _FIELDS:
        return None
    matrix = np.full((len(rows), len(NUMERIC)), np.nan)
    for i, name in enumerate(NUMERIC):
        if name not in present:
            continue
        column = [row.get(name) for row in rows]
        if not set(map(type, column)) <= _NUMBER_TYPES:
            return None
        try:
            values = np.array(column, dtype=np.float64)
        except OverflowError:
            return None
        ge, le, _ = _BOUNDS[name]
        if (
            np.isinf(values).any()
            or (ge is not None and (values < ge).any())
            or (le is not None and (values > le).any())
        ):
            return None
        matrix[:, i] = values
    raw_regions = [row.get("region") for row in rows]
    if not set(map(type, raw_regions)) <= _REGION_TYPES:
        return None
    max_length = _BOUNDS["region"][2]
    if max_length is not None and max((len(r) for r in raw_regions if r is not None), default=0) > max_length:
        return None
    return serving_rules(matrix), [normalised_region(r) for r in raw_regions]
