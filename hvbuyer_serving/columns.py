"""The columnar bodies of ``POST /predict/batch``: JSON in columns (``{"columns": {"age": [...], ...}}``) and an
Apache Arrow IPC stream (``application/vnd.apache.arrow.stream``, one column per feature). A plainly valid body
becomes ``(numeric_matrix, regions)`` in a few numpy operations per column; anything else is validated row by row
with the request model, so every form has the same rules and one 422 listing every error (located as
``["body", "columns", <feature>, <row>]``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from hvbuyer_assets.core.feature_spec import BY_NAME, REQUIRED_FIELDS, SERVING_RULES
from hvbuyer_serving import inputs
from hvbuyer_serving.api.errors import issues
from hvbuyer_serving.schemas import BatchRequest, numeric_bounds

Parsed = tuple[np.ndarray, list[str]]
PREFIX = ("body", "columns")
_BOUNDS = {name: numeric_bounds(BY_NAME[name]) for name in inputs.NUMERIC}
_REGION_MAX = BY_NAME["region"].max_length
_NUMBER_TYPES = {int, float, type(None)}
EXPECTED = 'expected {"rows": [...]} or {"columns": {...}}'


class Invalid(ValueError):
    """A body refused with 422: every issue (``loc``, ``msg``, ``type``)."""

    def __init__(self, found: list[dict[str, Any]], regions: list[Any] | None = None) -> None:
        super().__init__(f"{len(found)} invalid fields")
        self.issues = found
        self.regions = regions  # the sent region column, when the shape was right: its unknown regions count too


def _issue(loc: list[str | int], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": [*PREFIX, *loc], "msg": msg, "type": kind}


def _shape_issues(names: list[str], lengths: set[int], max_rows: int) -> list[dict[str, Any]]:
    """Columns the request model does not know or misses, unequal lengths, no rows or too many."""
    found = [_issue([n], "Extra inputs are not permitted", "extra_forbidden") for n in names if n not in BY_NAME]
    found += [_issue([n], "Field required", "missing") for n in REQUIRED_FIELDS if n not in names]
    if len(lengths) > 1:
        found.append(_issue([], f"columns differ in length: {sorted(lengths)}", "value_error"))
    elif lengths and not 1 <= min(lengths) <= max_rows:
        found.append(_issue([], f"expected 1 to {max_rows} rows, got {min(lengths)}", "value_error"))
    return found


def _row_issues(columns: Mapping[str, list[Any]], n: int) -> list[dict[str, Any]]:
    """The request model's errors on the rows these columns hold, each located by column and row."""
    names = list(columns)
    rows = [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)] if names else []
    try:
        BatchRequest.model_validate({"rows": rows})
    except ValidationError as exc:
        return [
            {**issue, "loc": [*PREFIX, issue["loc"][3], issue["loc"][2], *issue["loc"][4:]]}
            if len(issue["loc"]) >= 4
            else issue
            for issue in issues(exc, ["body"])
        ]
    return []


def _assemble(numeric: Mapping[str, np.ndarray], region: list[str | None], n: int) -> Parsed:
    matrix = np.full((n, len(inputs.NUMERIC)), np.nan)
    for name, values in numeric.items():
        matrix[:, inputs.POSITION[name]] = values
    return SERVING_RULES.matrix(matrix), [inputs.normalised_region(r) for r in region]


def _in_bounds(name: str, values: np.ndarray) -> bool:
    ge, le = _BOUNDS[name]
    finite = values[~np.isnan(values)]
    return bool(np.isfinite(finite).all() and (finite >= ge).all() and (finite <= le).all())


def json_columns(data: Any, max_rows: int) -> Parsed:
    """``(numeric_matrix, regions)`` of a decoded ``{"columns": {...}}`` body; Invalid with every issue."""
    if not isinstance(data, dict) or set(data) != {"columns"} or not isinstance(data["columns"], dict):
        raise Invalid(
            [{"loc": ["body"], "msg": 'expected {"rows": [...]} or {"columns": {...}}', "type": "value_error"}]
        )
    columns = data["columns"]
    not_lists = [
        _issue([n], "Input should be a valid list", "list_type") for n, v in columns.items() if type(v) is not list
    ]
    if not_lists:
        raise Invalid(not_lists)
    found = _shape_issues(list(columns), {len(v) for v in columns.values()}, max_rows)
    if found:
        raise Invalid(found)
    n = len(next(iter(columns.values())))
    numeric: dict[str, np.ndarray] = {}
    plain = True
    for name, values in columns.items():
        if name == "region":
            textual = set(map(type, values)) <= {str, type(None)}
            plain = plain and textual and max(map(len, filter(None, values)), default=0) <= _REGION_MAX
            continue
        if not set(map(type, values)) <= _NUMBER_TYPES:
            plain = False
            break
        try:
            numeric[name] = np.array(values, dtype=np.float64)
        except OverflowError:
            plain = False
            break
        plain = plain and _in_bounds(name, numeric[name])
    if not plain:
        raise Invalid(_row_issues(columns, n), columns.get("region"))
    return _assemble(numeric, columns.get("region", [None] * n), n)


def arrow_columns(body: bytes, max_rows: int) -> Parsed:
    """``(numeric_matrix, regions)`` of an Arrow IPC stream body; Invalid with every issue."""
    try:
        table = pa.ipc.open_stream(body).read_all()
    except (pa.ArrowException, ValueError) as exc:
        raise Invalid([{"loc": ["body"], "msg": f"not an Arrow IPC stream: {exc}", "type": "value_error"}]) from None
    names = table.column_names
    found = _shape_issues(names, {table.num_rows}, max_rows)
    if len(set(names)) != len(names):
        found.append(_issue([], "a column is named twice", "value_error"))
    if found:
        raise Invalid(found)
    numeric: dict[str, np.ndarray] = {}
    plain = True
    for name in names:
        column = table.column(name)
        kind = column.type
        if name == "region":
            if pa.types.is_dictionary(kind):
                column, kind = column.cast(kind.value_type), kind.value_type
            textual = pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)
            plain = plain and textual and (pc.max(pc.utf8_length(column)).as_py() or 0) <= _REGION_MAX
            continue
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind)):
            plain = False
            continue
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)  # null -> NaN
        genuine_nan = np.isnan(values) & ~column.is_null().to_numpy(zero_copy_only=False)
        plain = plain and not genuine_nan.any() and _in_bounds(name, values)
        numeric[name] = values
    if not plain:
        sent = {name: table.column(name).to_pylist() for name in names}
        raise Invalid(_row_issues(sent, table.num_rows), sent.get("region"))
    region = table.column("region").cast(pa.string()).to_pylist() if "region" in names else [None] * table.num_rows
    return _assemble(numeric, region, table.num_rows)
