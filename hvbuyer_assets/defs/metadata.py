"""Asset metadata helpers shared by every domain: where an asset is stored (its ``storage.catalog`` entry), plots
(``PlotStore``) and tables for the UI, and the column schema / row count of a stored frame (Dagster's
``dagster/column_schema`` and ``dagster/row_count``)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa

from hvbuyer_assets.core.columns import COLUMN_DESCRIPTIONS
from hvbuyer_assets.storage.catalog import StoredAsset, entry
from hvbuyer_assets.storage.plots import write_plot

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


# The Dagster UI (1.13) shows a markdown metadata entry inline only when it is shorter than 1,000 characters;
# a longer one is a "[Show Markdown]" link to a dialog (ui-core/src/metadata/MetadataEntry.tsx, case
# 'MarkdownMetadataEntry': `expandSmallValues && entry.mdStr.length < 1000`; the asset page's metadata tables pass
# expandSmallValues). A PNG as a base64 data URI is tens of kilobytes, so a plot is a short link to its file instead.
INLINE_MARKDOWN_CHARS = 1000
PLOTS = "plots"  # the resource key of the PlotStore


class PlotStore(dg.ConfigurableResource):
    """Plots as metadata the Dagster UI shows inline: each PNG stored once under `<base_uri>/plots/` (named by its
    content) and attached as a markdown image of its URL on the prediction API (`GET /plots/{name}`)."""

    base_uri: str
    api_url: str
    s3_endpoint_url: str | None = None

    def markdown(self, title: str, png: bytes) -> dg.MetadataValue:
        """Store ``png``; a markdown image of its URL, titled ``title``, short enough to render inline."""
        url = f"{self.api_url.rstrip('/')}/plots/{write_plot(self.base_uri, png, self.s3_endpoint_url)}"
        alt = re.sub(r"[\[\]\n]", " ", title)[: INLINE_MARKDOWN_CHARS - len(url) - 10]
        return dg.MetadataValue.md(f"![{alt}]({url})")


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
