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

from hvbuyer_assets.core import features
from hvbuyer_assets.core.cleaning import AGE_MAX, AGE_MIN, normalise_region_value

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
    matrix = np.array([_values(row) for row in rows], dtype=np.float64).reshape(len(rows), len(NUMERIC))
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
