import numpy as np
import pandas as pd
import pytest

from hvbuyer_assets.core.segments import SUMMARY_COLUMNS, age_band, loyalty_tier, segment_summary


def test_age_band_edges():
    ages = pd.Series([13, 24.9, 25, 34.99, 35, 44, 45, 54, 55, 64.5, 65, 110, np.nan])
    assert age_band(ages).tolist() == [
        "<25",
        "<25",
        "25-34",
        "25-34",
        "35-44",
        "35-44",
        "45-54",
        "45-54",
        "55-64",
        "55-64",
        "65+",
        "65+",
        "Unknown",
    ]


def test_loyalty_tier_edges_and_index_and_dtype():
    points = pd.Series([0, 99.5, 100, 499, 500, 1999, 2000, 1e6, np.nan, -5], index=list("abcdefghij"))
    tiers = loyalty_tier(points)
    assert tiers.tolist() == [
        "Bronze",
        "Bronze",
        "Silver",
        "Silver",
        "Gold",
        "Gold",
        "Platinum",
        "Platinum",
        "Unknown",
        "Unknown",
    ]
    assert list(tiers.index) == list("abcdefghij")
    assert tiers.dtype == pd.StringDtype("pyarrow")


def test_segment_summary_counts_sums_and_ranks():
    scores = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e"],
            "region": pd.array(["East", "East", "West", "West", None], dtype="string[pyarrow]"),
            "age": [30.0, 31.0, 30.0, 70.0, np.nan],
            "loyalty_points": [10.0, 20.0, 10.0, 6000.0, np.nan],
            "large_purchase_probability": [0.2, 0.4, 0.9, 0.1, 0.3],
        }
    )
    summary = segment_summary(scores)
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert summary["rank"].tolist() == [1, 2, 3, 4]
    top = summary.iloc[0]
    assert (top["region"], top["age_band"], top["loyalty_tier"]) == ("West", "25-34", "Bronze")
    assert top["customers"] == 1 and top["expected_large_buyers"] == pytest.approx(0.9)
    east = summary[summary["region"] == "East"].iloc[0]
    assert east["customers"] == 2
    assert east["expected_large_buyers"] == pytest.approx(0.6)
    assert east["mean_probability"] == pytest.approx(0.3)
    unknown = summary[summary["region"] == "Unknown"].iloc[0]
    assert (unknown["age_band"], unknown["loyalty_tier"]) == ("Unknown", "Unknown")
    assert summary["customers"].sum() == 5
    assert summary["expected_large_buyers"].sum() == pytest.approx(scores["large_purchase_probability"].sum())
    assert summary["customers"].dtype == np.int64 and summary["rank"].dtype == np.int64


def test_segment_summary_ties_are_ranked_by_names_and_custom_column():
    scores = pd.DataFrame(
        {"region": ["West", "East"], "age": [40.0, 40.0], "loyalty_points": [0.0, 0.0], "p": [0.5, 0.5]}
    )
    summary = segment_summary(scores, probability_column="p")
    assert summary["region"].tolist() == ["East", "West"]
    assert summary["rank"].tolist() == [1, 2]
