"""Validated requests -> model inputs without a DataFrame: the serving rules of the feature declaration
(``feature_spec.SERVING_RULES``, which ``features.serving_frame`` applies too) on a (rows x features) float64
matrix in a few vectorised numpy operations, or on one row in plain Python.

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
from hvbuyer_assets.core.feature_spec import BY_NAME, REQUIRED_FIELDS, SERVING_RULES
from hvbuyer_assets.core.rules import normalise_region_value
from hvbuyer_serving.schemas import numeric_bounds

NUMERIC: tuple[str, ...] = features.FEATURE_NUMERIC
POSITION = {name: i for i, name in enumerate(NUMERIC)}
_values = operator.attrgetter(*NUMERIC)


@functools.lru_cache(maxsize=4096)
def normalised_region(value: str | None) -> str:
    """``rules.normalise_region`` for one value, cached (the same code path as the pipeline)."""
    return normalise_region_value(value)


def numeric_matrix(rows: Sequence[Any]) -> np.ndarray:
    """(n, len(NUMERIC)) float64 from objects with the feature attributes (None -> NaN), serving rules applied."""
    matrix = np.array([_values(row) for row in rows], dtype=np.float64).reshape(len(rows), len(NUMERIC))
    return SERVING_RULES.matrix(matrix)


def row_matrix(row: Any) -> np.ndarray:
    """:func:`numeric_matrix` of one row, the rules applied in plain Python (``SERVING_RULES.row``)."""
    return np.array([SERVING_RULES.row(list(_values(row)))], dtype=np.float64)


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
_FIELDS = frozenset(BY_NAME)
_REGION_MAX_LENGTH = BY_NAME["region"].max_length
_NUMERIC_BOUNDS = [numeric_bounds(BY_NAME[name]) for name in NUMERIC]
_REQUIRED = frozenset(REQUIRED_FIELDS)


class _Missing:
    """Stands for a required field a row did not send (its type fails the column's type check)."""


_MISSING = _Missing()
_ABSENT = {name: _MISSING if name in _REQUIRED else None for name in BY_NAME}


def fast_batch(body: bytes, max_rows: int) -> tuple[np.ndarray, list[str]] | None:
    """``(numeric_matrix, regions)`` of a plainly valid ``{"rows": [...]}`` body, built column by column in numpy
    with no model object per row; None for anything else (the caller then validates with pydantic, so clients
    get its exact errors and its lax coercions, e.g. numeric strings).

    "Plainly valid": known fields only, the required ones in every row, numbers or null for numerics within the
    declared bounds, strings or null within the length limit for region, 1..max_rows rows. ``test_inputs.py``
    proves it equals the pydantic path.
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
    if not _REQUIRED <= present <= _FIELDS:
        return None
    matrix = np.full((len(rows), len(NUMERIC)), np.nan)
    for i, name in enumerate(NUMERIC):
        if name not in present:
            continue
        absent = _ABSENT[name]
        column = [row.get(name, absent) for row in rows]
        if not set(map(type, column)) <= _NUMBER_TYPES:
            return None
        try:
            values = np.array(column, dtype=np.float64)
        except OverflowError:
            return None
        ge, le = _NUMERIC_BOUNDS[i]
        if (
            np.isinf(values).any()
            or (ge is not None and (values < ge).any())
            or (le is not None and (values > le).any())
        ):
            return None
        matrix[:, i] = values
    absent = _ABSENT["region"]
    raw_regions = [row.get("region", absent) for row in rows]
    if not set(map(type, raw_regions)) <= _REGION_TYPES:
        return None
    longest = max((len(r) for r in raw_regions if r is not None), default=0)
    if _REGION_MAX_LENGTH is not None and longest > _REGION_MAX_LENGTH:
        return None
    return SERVING_RULES.matrix(matrix), [normalised_region(r) for r in raw_regions]
