import numpy as np
import pandas as pd
import pytest

from hvbuyer_assets.core.features import (
    BEHAVIOUR_FEATURES,
    DEMOGRAPHIC_FEATURES,
    FEATURE_COLUMNS,
    FEATURE_NUMERIC,
    FEATURES,
    NO_HISTORY,
    SERVING_RULES,
    TIME_INDEXED_FEATURES,
    build_features,
    latest_event_time,
    serving_frame,
)

AS_OF = pd.Timestamp("2025-01-31T00:00:00Z")
STRING = "string[pyarrow]"


def customers(rows: list[tuple]) -> pd.DataFrame:
    ids, ages, regions, signups, points = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "customer_id": pd.array(ids, dtype=STRING),
            "age": np.array(ages, dtype="float64"),
            "region": pd.array(regions, dtype=STRING),
            "signup_date": pd.to_datetime(list(signups), utc=True),
            "loyalty_points": np.array(points, dtype="float64"),
        }
    )


def transactions(rows: list[tuple]) -> pd.DataFrame:
    """rows: (customer_id, amount, timestamp, status)."""
    if not rows:
        rows_t: tuple = ((), (), (), ())
    else:
        rows_t = tuple(zip(*rows, strict=True))
    cust, amount, ts, status = rows_t
    return pd.DataFrame(
        {
            "transaction_id": pd.array([f"t{i}" for i in range(len(cust))], dtype=STRING),
            "customer_id": pd.array(cust, dtype=STRING),
            "amount": np.array(amount, dtype="float64"),
            "timestamp": pd.to_datetime(list(ts), utc=True),
            "payment_method": pd.array(["card"] * len(cust), dtype=STRING),
            "status": pd.array(status, dtype=STRING),
        }
    )


def days_before(days: float) -> pd.Timestamp:
    return AS_OF - pd.Timedelta(days=days)


CUSTOMERS = customers(
    [
        ("a", 30, "North", "2024-01-31T00:00:00Z", 100),
        ("b", np.nan, "  south  east ", None, np.nan),
        ("c", 70, None, "2024-12-31T00:00:00Z", 5000),
    ]
)
TX = transactions(
    [
        ("a", 100.0, days_before(400), "completed"),  # outside 365d window
        ("a", 300.0, days_before(60), "completed"),  # large (>= 300), in 90d/365d
        ("a", 50.0, days_before(10), "completed"),  # latest purchase, in 30d
        ("a", 999.0, days_before(5), "refunded"),
        ("a", 20.0, days_before(2), "failed"),
        ("a", 70.0, days_before(1), "pending"),
        ("b", 500.0, days_before(3), "failed"),
        ("zzz", 800.0, days_before(3), "completed"),  # unknown customer: ignored
    ]
)


def test_features_of_a_customer_with_history_are_hand_computed_values():
    feats = build_features(TX, CUSTOMERS, AS_OF)
    a = feats.loc["a"]
    assert a["n_transactions"] == 6
    assert a["n_completed"] == 3
    assert (a["n_completed_30d"], a["n_completed_90d"], a["n_completed_365d"]) == (1, 2, 2)
    assert a["total_spend"] == 450.0
    assert (a["spend_90d"], a["spend_365d"]) == (350.0, 350.0)
    assert a["avg_spend"] == pytest.approx(150.0)
    assert a["max_spend"] == 300.0
    assert a["last_amount"] == 50.0
    assert a["n_large"] == 1
    assert a["share_large"] == pytest.approx(1 / 3)
    assert a["days_since_last_purchase"] == pytest.approx(10.0)
    assert a["days_since_first_purchase"] == pytest.approx(400.0)
    assert a["refund_rate"] == pytest.approx(1 / 5)  # 1 refunded of 5 non-failed
    assert a["n_failed"] == 1
    assert a["tenure_days"] == pytest.approx(366.0)
    assert a["last_event_at"] == days_before(1)
    assert (a["age"], a["loyalty_points"], a["region"]) == (30.0, 100.0, "North")


def test_frame_shape_index_and_dtypes():
    feats = build_features(TX, CUSTOMERS, AS_OF)
    assert list(feats.index) == ["a", "b", "c"]
    assert feats.index.name == "customer_id"
    assert feats.index.dtype == pd.StringDtype("pyarrow")
    assert list(feats.columns) == list(FEATURE_COLUMNS) + ["signup_date", "feature_as_of", "last_event_at"]
    assert all(feats[c].dtype == np.float64 for c in FEATURE_NUMERIC)
    assert feats["region"].dtype == pd.StringDtype("pyarrow")
    assert (feats["feature_as_of"] == AS_OF).all()
    assert str(feats["last_event_at"].dtype) == "datetime64[ns, UTC]"


def test_region_normalised_and_unknown_and_missing_demographics():
    feats = build_features(TX, CUSTOMERS, AS_OF)
    assert feats.loc["b", "region"] == "South East"
    assert feats.loc["c", "region"] == "Unknown"
    assert np.isnan(feats.loc["b", "age"]) and np.isnan(feats.loc["b", "tenure_days"])
    assert np.isnan(feats.loc["b", "loyalty_points"])


def test_failed_only_customer_has_no_purchase_history_but_a_failed_count():
    b = build_features(TX, CUSTOMERS, AS_OF).loc["b"]
    assert b["n_transactions"] == 1 and b["n_failed"] == 1 and b["n_completed"] == 0
    assert b["total_spend"] == 0 and b["max_spend"] == 0 and b["refund_rate"] == 0
    assert np.isnan(b["days_since_last_purchase"])
    assert b["last_event_at"] == days_before(3)


def test_customer_without_transactions_gets_the_no_history_values():
    c = build_features(TX, CUSTOMERS, AS_OF).loc["c"]
    recencies = {"days_since_last_purchase", "days_since_first_purchase"}  # documented: counts/amounts 0, recencies NaN
    for name in BEHAVIOUR_FEATURES:
        assert np.isnan(c[name]) if name in recencies else c[name] == 0, name
        expected = NO_HISTORY[name]
        assert (np.isnan(c[name]) and np.isnan(expected)) or c[name] == expected, name
    assert c["last_event_at"] is pd.NaT
    assert NO_HISTORY["n_completed"] == 0 and np.isnan(NO_HISTORY["days_since_last_purchase"])


def test_transactions_after_as_of_do_not_change_any_feature():
    base = build_features(TX, CUSTOMERS, AS_OF)
    later = transactions(
        [
            ("a", 5000.0, AS_OF + pd.Timedelta(seconds=1), "completed"),
            ("b", 700.0, AS_OF + pd.Timedelta(days=3), "completed"),
            ("c", 10.0, AS_OF + pd.Timedelta(days=30), "refunded"),
        ]
    )
    altered = TX.copy()
    altered.loc[0, "amount"] = 123.0  # the only change is to the past: must show up
    with_future = pd.concat([TX, later], ignore_index=True)
    pd.testing.assert_frame_equal(build_features(with_future, CUSTOMERS, AS_OF), base)
    assert (base["last_event_at"].dropna() <= AS_OF).all()
    assert build_features(altered, CUSTOMERS, AS_OF).loc["a", "total_spend"] == 450.0 - 100.0 + 123.0


def test_altering_a_future_transaction_changes_nothing():
    future = transactions([("a", 10.0, AS_OF + pd.Timedelta(days=1), "pending")])
    base = build_features(pd.concat([TX, future], ignore_index=True), CUSTOMERS, AS_OF)
    future.loc[0, ["amount", "status"]] = [9999.0, "completed"]
    future.loc[0, "customer_id"] = "c"
    changed = build_features(pd.concat([TX, future], ignore_index=True), CUSTOMERS, AS_OF)
    pd.testing.assert_frame_equal(changed, base)


def test_purchase_exactly_at_as_of_counts():
    tx = transactions([("c", 400.0, AS_OF, "completed")])
    c = build_features(tx, CUSTOMERS, AS_OF).loc["c"]
    assert c["n_completed"] == 1 and c["n_completed_30d"] == 1 and c["n_large"] == 1
    assert c["days_since_last_purchase"] == 0.0
    assert c["last_event_at"] == AS_OF


def test_window_boundaries_are_half_open():
    tx = transactions(
        [
            ("c", 1.0, days_before(30), "completed"),  # exactly 30 days before: outside the 30d window
            ("c", 2.0, days_before(30) + pd.Timedelta(seconds=1), "completed"),
        ]
    )
    c = build_features(tx, CUSTOMERS, AS_OF).loc["c"]
    assert c["n_completed_30d"] == 1 and c["n_completed_90d"] == 2


def test_last_amount_tie_takes_the_largest_and_large_amount_is_configurable():
    tx = transactions([("c", 80.0, days_before(1), "completed"), ("c", 90.0, days_before(1), "completed")])
    c = build_features(tx, CUSTOMERS, AS_OF, large_amount=85.0).loc["c"]
    assert c["last_amount"] == 90.0 and c["n_large"] == 1


def test_tenure_is_floored_at_zero_for_signup_after_as_of():
    cust = customers([("x", 40, "East", "2025-03-01T00:00:00Z", 0)])
    assert build_features(transactions([]), cust, AS_OF).loc["x", "tenure_days"] == 0.0


def test_naive_as_of_is_utc_and_duplicate_customers_raise():
    naive = build_features(TX, CUSTOMERS, pd.Timestamp("2025-01-31"))
    pd.testing.assert_frame_equal(naive, build_features(TX, CUSTOMERS, AS_OF))
    with pytest.raises(ValueError, match="unique"):
        build_features(TX, pd.concat([CUSTOMERS, CUSTOMERS]), AS_OF)


def test_no_history_customer_equals_serving_frame_of_its_demographics():
    feats = build_features(TX, CUSTOMERS, AS_OF)
    c = feats.loc[["c"]]
    served = serving_frame(
        [{"age": 70, "region": None, "loyalty_points": 5000, "tenure_days": c["tenure_days"].iloc[0]}]
    )
    pd.testing.assert_frame_equal(served, c[list(FEATURE_COLUMNS)].reset_index(drop=True))
    # a no-history customer with unknown demographics: the API call omitting everything but region
    nobody = customers([("n", np.nan, " south   EAST", None, np.nan)])
    built = build_features(transactions([]), nobody, AS_OF)[list(FEATURE_COLUMNS)].reset_index(drop=True)
    pd.testing.assert_frame_equal(serving_frame([{"region": " south   EAST"}]), built)


def test_serving_frame_uses_given_behaviour_fields_and_defaults_the_rest():
    frame = serving_frame(
        [
            {"age": "35", "region": "east", "loyalty_points": 1200, "n_completed": 4, "total_spend": 800.5},
            {"age": 50, "region": "West", "days_since_last_purchase": None, "extra": "ignored"},
        ]
    )
    assert list(frame.columns) == list(FEATURE_COLUMNS)
    assert frame.loc[0, "age"] == 35.0 and frame.loc[0, "region"] == "East"
    assert frame.loc[0, "n_completed"] == 4.0 and frame.loc[0, "total_spend"] == 800.5
    assert frame.loc[0, "n_transactions"] == 0.0 and frame.loc[1, "n_completed"] == 0.0
    assert np.isnan(frame.loc[1, "days_since_last_purchase"]) and np.isnan(frame.loc[1, "loyalty_points"])
    assert all(frame[c].dtype == np.float64 for c in FEATURE_NUMERIC)
    assert frame["region"].dtype == pd.StringDtype("pyarrow")


def test_serving_frame_applies_the_customer_cleaning_rules():
    frame = serving_frame([{"age": 250, "loyalty_points": -3, "tenure_days": -2}, {"age": 13, "loyalty_points": 0}])
    assert np.isnan(frame.loc[0, "age"]) and np.isnan(frame.loc[0, "loyalty_points"])
    assert frame.loc[0, "tenure_days"] == 0.0
    assert frame.loc[1, "age"] == 13.0 and frame.loc[1, "loyalty_points"] == 0.0
    assert len(serving_frame([])) == 0 and list(serving_frame([]).columns) == list(FEATURE_COLUMNS)


def test_serving_frame_rejects_non_numeric_values():
    with pytest.raises(ValueError):
        serving_frame([{"age": "old", "region": "East"}])


def test_latest_event_time_is_the_max_valid_timestamp():
    tx = transactions([("a", 1.0, days_before(3), "completed"), ("a", 1.0, days_before(1), "failed")])
    tx.loc[2] = tx.loc[0]
    tx.loc[2, "timestamp"] = pd.NaT
    assert latest_event_time(tx) == days_before(1)
    with pytest.raises(ValueError, match="as-of"):
        latest_event_time(transactions([]))


def test_column_tuples_are_derived_from_the_one_declaration():
    declared = [f.name for f in FEATURES]
    assert sorted(FEATURE_COLUMNS) == sorted(declared) and len(FEATURE_COLUMNS) == len(declared)
    categorical = [f.name for f in FEATURES if f.kind == "categorical"]
    assert list(FEATURE_COLUMNS[len(FEATURE_NUMERIC) :]) == categorical  # the model's order: numerics first
    assert DEMOGRAPHIC_FEATURES + BEHAVIOUR_FEATURES == FEATURE_NUMERIC
    assert set(NO_HISTORY) == set(BEHAVIOUR_FEATURES)
    assert set(TIME_INDEXED_FEATURES) <= set(FEATURE_NUMERIC)
    assert all(f.description.strip() for f in FEATURES)
    # what build_features computes is exactly what is declared, in the model's input order
    assert list(build_features(TX, CUSTOMERS, AS_OF).columns[: len(FEATURE_COLUMNS)]) == list(FEATURE_COLUMNS)


def test_serving_rules_on_a_matrix_equal_the_rules_on_a_row():
    rng = np.random.default_rng(11)
    n = 400
    matrix = rng.uniform(-50, 200, size=(n, len(FEATURE_NUMERIC)))
    matrix[rng.random(matrix.shape) < 0.3] = np.nan  # not sent
    rows = [[None if np.isnan(v) else float(v) for v in row] for row in matrix]
    by_matrix = SERVING_RULES.matrix(matrix.copy())
    by_row = np.array([SERVING_RULES.row(list(row)) for row in rows], dtype=np.float64)
    np.testing.assert_array_equal(by_matrix, by_row)
    age, points, tenure = (FEATURE_NUMERIC.index(n) for n in ("age", "loyalty_points", "tenure_days"))
    assert not ((by_matrix[:, age] < 13) | (by_matrix[:, age] > 110)).any()  # outside the cleaning range: unknown
    assert not (by_matrix[:, points] < 0).any() and not (by_matrix[:, tenure] < 0).any()
    for i, name in enumerate(FEATURE_NUMERIC):
        if name in NO_HISTORY and not np.isnan(NO_HISTORY[name]):
            assert not np.isnan(by_matrix[:, i]).any(), name  # omitted behaviour = no history
