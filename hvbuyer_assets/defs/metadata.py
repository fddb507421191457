"""Asset metadata helpers shared by every domain: where an asset is stored (its ``storage.catalog`` entry), plots
and tables for the UI, and the column schema / row count of a stored frame (Dagster's ``dagster/column_schema`` and
``dagster/row_count``)."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa

from hvbuyer_assets.core.columns import COLUMN_DESCRIPTIONS
from hvbuyer_assets.storage.catalog import StoredAsset, entry

LAYER_KEY = "hvbuyer/layer"
LATEST_WINS_KEY = "hvbuyer/latest_wins_by"  # a per-drop asset whose latest record of this key wins across drops
DECIMALS = 4  # figures shown in the UI are rounded to this many decimals


def stored(name: str) -> dict[str, str]:
    """The metadata of asset ``name``: its ``storage.catalog`` entry (data layer, latest-wins key), which the IO
    manager reads back (:func:`stored_asset`)."""
    return metadata_of(entry(name))


def metadata_of(asset: StoredAsset) -> dict[str, str]:
    """A catalog entry as asset metadata."""
    return {LAYER_KEY: asset.layer, **({LATEST_WINS_KEY: asset.latest_wins_by} if asset.latest_wins_by else {})}


def stored_asset(name: str, metadata: Mapping[str, Any] | None, per_drop: bool) -> StoredAsset:
    """The catalog entry an asset's metadata carries (:func:`metadata_of`; no metadata: the ``interim`` layer)."""
    metadata = metadata or {}
    return StoredAsset(name, metadata.get(LAYER_KEY, "interim"), per_drop, metadata.get(LATEST_WINS_KEY))


def png_metadata(title: str, png: bytes) -> dg.MetadataValue:
    """A PNG plot as output metadata the Dagster UI renders (markdown image with a data URI)."""
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})")


def _type(dtype: Any) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return "timestamp"
    return "string"


def column_schema(frame: pd.DataFrame, descriptions: Mapping[str, str] | None = None) -> dg.TableSchema:
    """The frame's columns (a named index first, as stored) with their types and descriptions
    (``core.columns.COLUMN_DESCRIPTIONS`` unless given)."""
    described = COLUMN_DESCRIPTIONS if descriptions is None else descriptions
    columns = [] if frame.index.name is None else [(frame.index.name, frame.index.dtype)]
    columns += list(frame.dtypes.items())
    return dg.TableSchema(
        columns=[
            dg.TableColumn(str(name), _type(dtype), description=described.get(str(name))) for name, dtype in columns
        ]
    )


def arrow_column_schema(schema: pa.Schema) -> dg.TableSchema:
    """``column_schema`` of a file written a row group at a time (``storage.staged``): the types pandas reads."""
    return column_schema(schema.empty_table().to_pandas())


def frame_metadata(frame: pd.DataFrame) -> dict[str, Any]:
    """Row count and column schema of a stored frame, under Dagster's standard keys."""
    return {"dagster/row_count": len(frame), "dagster/column_schema": column_schema(frame)}


def _cell(value: Any) -> Any:
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):  # NaN, NaT, pd.NA
        return None
    if isinstance(value, float):
        return rounded(value)  # 4.3e-68 stays 4.3e-68, not 0
    if isinstance(value, bool | int | str):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return _cell(value.item())
    return str(value)


def table_metadata(frame: pd.DataFrame, descriptions: Mapping[str, str] | None = None) -> dg.MetadataValue:
    """A small frame as a Dagster table (schema with types and descriptions, floats ``rounded``)."""
    schema = column_schema(frame.reset_index(drop=True), descriptions)
    records = [
        dg.TableRecord({str(k): _cell(v) for k, v in row.items()})
        for row in frame.reset_index(drop=True).to_dict(orient="records")
    ]
    return dg.MetadataValue.table(records, schema=schema)


def rounded(value: Any) -> Any:
    """A float as the UI shows it: 4 decimals, or 3 significant digits when smaller than 1e-4 (tolerances,
    ONNX differences); anything else unchanged."""
    if isinstance(value, float) and math.isfinite(value):
        return round(value, DECIMALS) if value == 0 or abs(value) >= 10**-DECIMALS else float(f"{value:.3g}")
    return value


def rounded_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata with every plain float ``rounded``."""
    return {key: rounded(value) for key, value in metadata.items()}
