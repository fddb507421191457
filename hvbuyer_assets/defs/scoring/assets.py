"""Batch scores of every known customer with the champion, and the ranked customer-group summary."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pandas as pd
import polars as pl
from pydantic import Field

from hvbuyer_assets.core import evaluation, model, segments
from hvbuyer_assets.defs.io_manager import STORED_FRAMES, StoredFrame
from hvbuyer_assets.defs.metadata import PlotStore, stored, table_metadata
from hvbuyer_assets.defs.model.resources import ModelRegistryResource
from hvbuyer_assets.defs.scoring import checks
from hvbuyer_assets.defs.scoring.resources import OnlineStoreResource
from hvbuyer_serving.explain import FEATURE_COUNT, stored_reasons
from hvbuyer_serving.online_store import score_records

SCORING_BATCH_ROWS = 250_000  # customers scored at a time (~60 MiB of features)


class ScoringConfig(dg.Config):
    """``reasons``: store each customer's K largest TreeSHAP contributions in the online store (0: none), so a
    look-up with ``?explain=K`` answers them at no cost; explaining costs ~1-10 ms a customer (docs/api.md)."""

    reasons: int = Field(0, ge=0, le=FEATURE_COUNT)


@dg.asset(
    ins={"customer_features": dg.AssetIn(input_manager_key=STORED_FRAMES)},
    group_name="scoring",
    metadata=stored("customer_scores"),
    kinds={"pandas", "parquet"},
    check_specs=[checks.SCORES_ARE_PROBABILITIES, checks.ONE_SCORE_PER_CUSTOMER],
)
def customer_scores(
    config: ScoringConfig,
    customer_features: StoredFrame,
    champion_model: dict[str, Any],
    model_registry: ModelRegistryResource,
    online_store: OnlineStoreResource,
    plots: PlotStore,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """P(large purchase in the next H days) for every known customer: features as of T, the champion model.
    One row per customer (`customer_id`, `large_purchase_probability`, `model_version`, `scored_at`,
    `features_as_of`); the metadata shows the score distribution. Each customer's score, model version, as-of
    time and features also go to the online store (`HVBUYER_ONLINE_STORE`) the API's lookups read: only the
    changed rows, as a new version readers switch to at once; if that write fails, so does the asset, and the
    previous version keeps answering. The features are read and scored `SCORING_BATCH_ROWS` customers at a
    time: the step holds one chunk of them, beside the scores and the store's records."""
    version = champion_model["champion_version"]
    champion = model_registry.load(version)
    scored_at = pd.Timestamp.now(tz="UTC")
    parts, records = [], []
    for chunk in customer_features.batches(SCORING_BATCH_ROWS):
        parts.append(model.score_rows(champion, chunk, version, scored_at))
        reasons = stored_reasons(champion, chunk, config.reasons) if config.reasons else None
        records.append(score_records(chunk, parts[-1]["large_purchase_probability"].to_numpy(), version, reasons))
    scores = pd.concat(parts, ignore_index=True)
    probabilities = scores["large_purchase_probability"]
    store = online_store.open()
    try:
        written = store.write(pl.concat(records), {"scored_at": scored_at.isoformat(), "model_version": version})
    finally:
        store.close()
    yield dg.Output(
        scores,
        metadata={
            "model_version": version,
            "online_store": store.name,
            "online_store_version": written.version,
            "online_rows_written": written.written,
            "online_rows_unchanged": written.unchanged,
            "online_rows_removed": written.removed,
            "customers": len(scores),
            "mean_probability": round(float(probabilities.mean()), 4),
            "median_probability": round(float(probabilities.median()), 4),
            "expected_large_buyers": round(float(probabilities.sum()), 1),
            "score_histogram": plots.markdown("score distribution", evaluation.plot_score_histogram(probabilities)),
        },
    )
    yield checks.scores_are_probabilities(scores)
    yield checks.one_score_per_customer(scores, customer_features.rows())


@dg.asset(group_name="scoring", metadata=stored("segment_summary"), kinds={"pandas", "parquet"})
def segment_summary(
    context: dg.AssetExecutionContext, customer_scores: pd.DataFrame, customer_features: pd.DataFrame
) -> pd.DataFrame:
    """Which customer groups (region x age band x loyalty tier) hold the most expected large buyers, ranked."""
    demographics = customer_features[["region", "age", "loyalty_points"]]
    joined = customer_scores.join(demographics, on="customer_id")
    summary = segments.segment_summary(joined)
    context.add_output_metadata(
        {
            "segments": len(summary),
            "top_segments": table_metadata(summary.head(10)),
        }
    )
    return summary
