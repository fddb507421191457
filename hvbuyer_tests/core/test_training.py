import numpy as np
import pandas as pd
import pytest

from hvbuyer_assets.core.features import FEATURE_COLUMNS, build_features
from hvbuyer_assets.core.training import TRAINING_COLUMNS, build_training_set, snapshot_cutoffs

T = pd.Timestamp("2025-06-30T00:00:00Z")
H = pd.Timedelta(days=90)
C = T - H
STRING = "string[pyarrow]"


def customers(rows: list[tuple]) -> pd.DataFrame:
    """rows: (customer_id, signup_date)."""
    ids, signups = zip(*rows, strict=True)
    n = len(ids)
    return pd.DataFrame(
        {
            "customer_id": pd.array(ids, dtype=STRING),
            "age": np.full(n, 40.0),
            "region": pd.array(["East"] * n, dtype=STRING),
            "signup_date": pd.to_datetime(list(signups), utc=True),
            "loyalty_points": np.full(n, 10.0),
        }
    )


def transactions(rows: list[tuple]) -> pd.DataFrame:
    """rows: (customer_id, amount, timestamp, status)."""
    cust, amount, ts, status = (list(col) for col in zip(*rows, strict=True))
    return pd.DataFrame(
        {
            "transaction_id": pd.array([f"t{i}" for i in range(len(cust))], dtype=STRING),
            "customer_id": pd.array(cust, dtype=STRING),
            "amount": np.array(amount, dtype="float64"),
            "timestamp": pd.to_datetime(ts, utc=True),
            "payment_method": pd.array(["card"] * len(cust), dtype=STRING),
            "status": pd.array(status, dtype=STRING),
        }
    )


CUSTOMERS = customers(
    [
        ("early", "2023-01-01T00:00:00Z"),
        ("late", C - pd.Timedelta(days=10)),  # signed up after the training cutoff, before C
        ("nosignup", None),
    ]
)
TX = transactions(
    [
        ("early", 50.0, "2024-01-01T00:00:00Z", "completed"),  # oldest: history for every snapshot
        ("early", 400.0, C - H + pd.Timedelta(days=5), "completed"),  # in the train label window only
        ("nosignup", 350.0, C + pd.Timedelta(days=1), "completed"),  # in the holdout window only
        ("late", 20.0, T, "completed"),  # defines T
    ]
)


def test_cutoffs_and_windows_do_not_overlap():
    train, holdout = snapshot_cutoffs(T, 90, train_snapshots=3, snapshot_step_days=30)
    assert holdout == C
    assert train == [C - H, C - H - pd.Timedelta(days=30), C - H - pd.Timedelta(days=60)]
    ts = build_training_set(TX, CUSTOMERS, T, train_snapshots=3, snapshot_step_days=30)
    train_rows, hold_rows = ts[ts["split"] == "train"], ts[ts["split"] == "holdout"]
    assert (train_rows["cutoff"] + H <= hold_rows["cutoff"].min()).all()  # train label windows end by C
    assert (hold_rows["cutoff"] == C).all()
    assert set(train_rows["cutoff"]) == set(train)
    assert (ts["last_event_at"].dropna() <= ts["cutoff"][ts["last_event_at"].notna()]).all()


def test_labels_come_from_each_rows_own_window():
    ts = build_training_set(TX, CUSTOMERS, T).set_index(["split", "customer_id"])
    assert ts.loc[("train", "early"), "label"] == 1
    assert ts.loc[("holdout", "early"), "label"] == 0
    assert ts.loc[("train", "nosignup"), "label"] == 0
    assert ts.loc[("holdout", "nosignup"), "label"] == 1


def test_holdout_features_are_the_point_in_time_features_at_c():
    ts = build_training_set(TX, CUSTOMERS, T)
    hold = ts[ts["split"] == "holdout"].set_index("customer_id")[list(FEATURE_COLUMNS)]
    expected = build_features(TX, CUSTOMERS, C, large_amount=300.0)[list(FEATURE_COLUMNS)]
    pd.testing.assert_frame_equal(hold, expected, check_names=False, check_index_type=False)
    assert hold.loc["early", "n_completed"] == 2  # the 400 purchase is history at C
    assert hold.loc["nosignup", "n_completed"] == 0  # the purchase after C is not


def test_future_transactions_do_not_change_training_features():
    base = build_training_set(TX, CUSTOMERS, T)
    extra = transactions([("early", 999.0, C + pd.Timedelta(days=2), "completed")])
    changed = build_training_set(pd.concat([TX, extra], ignore_index=True), CUSTOMERS, T)
    pd.testing.assert_frame_equal(changed[list(FEATURE_COLUMNS)], base[list(FEATURE_COLUMNS)])
    assert changed["label"].sum() == base["label"].sum() + 1  # only the holdout label of "early" moves


def test_customers_signing_up_after_a_cutoff_are_excluded_from_that_snapshot():
    ts = build_training_set(TX, CUSTOMERS, T)
    assert set(ts.loc[ts["split"] == "train", "customer_id"]) == {"early", "nosignup"}
    assert set(ts.loc[ts["split"] == "holdout", "customer_id"]) == {"early", "late", "nosignup"}


def test_columns_and_dtypes():
    ts = build_training_set(TX, CUSTOMERS, T, threshold=300.0)
    assert list(ts.columns) == list(TRAINING_COLUMNS)
    assert ts["label"].dtype == np.int8
    assert ts["customer_id"].dtype == pd.StringDtype("pyarrow")
    assert ts["split"].dtype == pd.StringDtype("pyarrow")
    assert str(ts["cutoff"].dtype) == "datetime64[ns, UTC]"
    assert list(ts["split"].unique()) == ["train", "holdout"]


def test_snapshots_older_than_the_data_are_skipped_and_too_little_history_raises():
    ts = build_training_set(TX, CUSTOMERS, T, train_snapshots=10, snapshot_step_days=60)
    first = pd.Timestamp("2024-01-01T00:00:00Z")
    assert (ts["cutoff"] >= first).all()
    assert ts["cutoff"].nunique() == 1 + len([c for c in snapshot_cutoffs(T, 90, 10, 60)[0] if c >= first])
    short = TX[pd.to_datetime(TX["timestamp"], utc=True) > C - H + pd.Timedelta(days=1)]
    with pytest.raises(ValueError, match="not enough history"):
        build_training_set(short, CUSTOMERS, T)
