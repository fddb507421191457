import numpy as np
import pandas as pd
import pytest

from hvbuyer_assets.core.labels import build_labels, label_window

CUTOFF = pd.Timestamp("2025-01-01T00:00:00Z")
H = 90
END = CUTOFF + pd.Timedelta(days=H)
STRING = "string[pyarrow]"


def transactions(rows: list[tuple]) -> pd.DataFrame:
    """rows: (customer_id, amount, timestamp, status)."""
    cust, amount, ts, status = (list(col) for col in zip(*rows, strict=True)) if rows else ([], [], [], [])
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


def label_of(rows: list[tuple], threshold: float = 300.0) -> int:
    return int(build_labels(transactions(rows), ["x"], CUTOFF, H, threshold).loc["x"])


def test_window_is_open_at_cutoff_and_closed_at_cutoff_plus_h():
    assert label_of([("x", 500.0, CUTOFF, "completed")]) == 0  # at cutoff: a feature, not the label
    assert label_of([("x", 500.0, CUTOFF + pd.Timedelta(seconds=1), "completed")]) == 1
    assert label_of([("x", 500.0, END, "completed")]) == 1  # at cutoff + H: in the label
    assert label_of([("x", 500.0, END + pd.Timedelta(seconds=1), "completed")]) == 0


def test_only_completed_purchases_at_or_above_the_threshold_count():
    inside = CUTOFF + pd.Timedelta(days=10)
    assert label_of([("x", 300.0, inside, "completed")]) == 1  # exactly the threshold
    assert label_of([("x", 299.99, inside, "completed")]) == 0
    for status in ("pending", "refunded", "failed"):
        assert label_of([("x", 1000.0, inside, status)]) == 0, status
    assert label_of([("x", 150.0, inside, "completed")], threshold=100.0) == 1
    # several small purchases do not add up to a large one
    assert label_of([("x", 200.0, inside, "completed"), ("x", 200.0, inside, "completed")]) == 0


def test_output_is_int8_aligned_with_the_given_ids():
    tx = transactions(
        [
            ("b", 400.0, CUTOFF + pd.Timedelta(days=1), "completed"),
            ("b", 800.0, CUTOFF + pd.Timedelta(days=2), "completed"),
            ("ghost", 900.0, CUTOFF + pd.Timedelta(days=2), "completed"),
        ]
    )
    labels = build_labels(tx, pd.Series(["c", "b", "a"]), CUTOFF, H)
    assert labels.dtype == np.int8 and labels.name == "label"
    assert list(labels.index) == ["c", "b", "a"]
    assert labels.tolist() == [0, 1, 0]


def test_label_window_and_bad_horizon():
    assert label_window("2025-01-01", 90) == (CUTOFF, END)
    with pytest.raises(ValueError, match="horizon"):
        build_labels(transactions([]), ["x"], CUTOFF, 0)
