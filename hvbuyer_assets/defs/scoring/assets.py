"""Batch scores of every known customer with the champion, and the ranked customer-group summary."""

from typing import Any

import dagster as dg
import pandas as pd

from hvbuyer_assets.core import model, segments
from hvbuyer_assets.defs.resources import ModelRegistryResource, layer


@dg.asset(group_name="scoring", metadata=layer("scores"), kinds={"pandas", "parquet"})
def customer_scores(
    context: dg.AssetExecutionContext,
    customer_features: pd.DataFrame,
    champion_model: dict[str, Any],
    model_registry: ModelRegistryResource,
) -> pd.DataFrame:
    """P(large purchase in the next H days) for every known customer, features as of T, champion model."""
    version = champion_model["champion_version"]
    champion = model_registry.load(version)
    scores = pd.DataFrame(
        {
            "customer_id": customer_features.index.astype(pd.StringDtype("pyarrow")),
            "large_purchase_probability": model.predict_proba(champion, customer_features),
            "model_version": pd.Series(version, index=customer_features.index, dtype=pd.StringDtype("pyarrow")),
            "scored_at": pd.Timestamp.now(tz="UTC"),
            "features_as_of": customer_features["feature_as_of"].to_numpy(),
        }
    ).reset_index(drop=True)
    context.add_output_metadata(
        {
            "model_version": version,
            "customers": len(scores),
            "mean_probability": float(scores["large_purchase_probability"].mean()),
            "expected_large_buyers": float(scores["large_purchase_probability"].sum()),
        }
    )
    return scores


@dg.asset(group_name="scoring", metadata=layer("scores"), kinds={"pandas", "parquet"})
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
            "top_segments": dg.MetadataValue.md(summary.head(10).to_markdown(index=False)),
        }
    )
    return summary
