"""The online store's record of a customer, built for a whole scoring at once in polars (no Python per row):
``{"large_purchase_probability", "model_version", "feature_as_of", "features": {...}[, "reasons": [...]]}``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl

from hvbuyer_assets.core.features import FEATURE_COLUMNS, FEATURE_NUMERIC

ISO_SECONDS = "%Y-%m-%dT%H:%M:%S%:z"  # what datetime.isoformat() gives for a whole-second UTC time


def score_records(
    customer_features: pd.DataFrame,
    probabilities: np.ndarray,
    model_version: str,
    reasons: list[str] | None = None,
) -> pl.DataFrame:
    """(customer_id, record JSON) for every row of ``customer_features`` (indexed by customer id, as the features
    asset is) scored ``probabilities`` by ``model_version``; ``reasons``: each customer's explanation as JSON
    (``explain.explain``), stored as the record's ``reasons``, or None. Validated here, once: a probability that
    is not finite within [0, 1] is a ValueError (the look-up answers the stored bytes as they are)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if not (np.isfinite(probabilities) & (probabilities >= 0) & (probabilities <= 1)).all():
        bad = probabilities[~(np.isfinite(probabilities) & (probabilities >= 0) & (probabilities <= 1))][:3]
        raise ValueError(f"probabilities must be finite and within [0, 1], got e.g. {bad.tolist()}")
    frame = pl.from_pandas(
        customer_features[[*FEATURE_COLUMNS, "feature_as_of"]].reset_index(names="customer_id"), nan_to_null=True
    )
    frame = frame.with_columns(
        pl.col("customer_id").cast(pl.String),
        pl.Series("large_purchase_probability", probabilities),
        pl.lit(model_version, dtype=pl.String).alias("model_version"),
        pl.col("feature_as_of").dt.convert_time_zone("UTC").dt.to_string(ISO_SECONDS),
        *(pl.col(name).cast(pl.Float64).fill_nan(None) for name in FEATURE_NUMERIC),
    )
    fields = [
        pl.col("large_purchase_probability"),
        pl.col("model_version"),
        pl.col("feature_as_of"),
        pl.struct(*FEATURE_COLUMNS).alias("features"),
    ]
    record = pl.struct(*fields).struct.json_encode()
    if reasons is not None:
        given = pl.Series("reasons", reasons, dtype=pl.String)
        record = pl.concat_str(record.str.strip_suffix("}"), pl.lit(',"reasons":'), pl.lit(given), pl.lit("}"))
    return frame.select("customer_id", record.alias("record"))
