"""Cleaning rules: typed output, quarantine reasons, de-duplication and normalisation."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from hvbuyer_assets.core import cleaning
from hvbuyer_assets.core.cleaning import QUARANTINE_COLUMNS, clean_customers, clean_transactions, dedup
from hvbuyer_assets.core.cleaning import transactions as tx_cleaning
from hvbuyer_assets.core.contract import raw_to_frame, read_transactions_file
from hvbuyer_assets.core.rules import normalise_region, normalise_region_value

S = pd.StringDtype("pyarrow")
ARRIVED = pd.Timestamp("2024-06-01T00:00:00Z")
KNOWN = pd.Series(["C1", "C2"], dtype=S)


def _frame(rows: list[dict[str, object]], columns: tuple[str, ...]) -> pd.DataFrame:
    """A raw frame like the shell builds it: string[pyarrow] columns + lineage + arrived_at (ns, UTC)."""
    frame = pd.DataFrame(rows)
    for col in columns:
        frame[col] = frame[col].astype(S) if col in frame else pd.Series([None] * len(frame), dtype=S)
    frame["source_file"] = frame.get("source_file", pd.Series(["drop_1"] * len(frame))).astype(S)
    if "source_row" not in frame:
        frame["source_row"] = np.arange(1, len(frame) + 1)
    frame["source_row"] = frame["source_row"].astype("int64")
    arrived = frame["arrived_at"] if "arrived_at" in frame else pd.Series([ARRIVED] * len(frame))
    frame["arrived_at"] = pd.to_datetime(arrived, utc=True).dt.as_unit("ns")
    return frame


TX_COLUMNS = ("transaction_id", "customer_id", "amount", "timestamp", "payment_method", "status")
CUST_COLUMNS = ("customer_id", "age", "region", "signup_date", "loyalty_points")


def _tx(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "transaction_id": "T1",
        "customer_id": "C1",
        "amount": "10.00",
        "timestamp": "2024-01-01T10:00:00Z",
        "payment_method": "card",
        "status": "completed",
    }
    row.update(overrides)
    return row


def _cust(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "customer_id": "C1",
        "age": "35",
        "region": "East",
        "signup_date": "2020-01-01",
        "loyalty_points": "100",
    }
    row.update(overrides)
    return row


def _clean_tx(*rows: dict[str, object]):  # noqa: ANN202
    return clean_transactions(_frame(list(rows), TX_COLUMNS), KNOWN)


# ----------------------------------------------------------------------------------------------------
# transactions


def test_clean_transactions_types_and_normalised_text() -> None:
    result = _clean_tx(
        _tx(transaction_id=" T1 ", customer_id=" C1", payment_method=" PayPal ", status=" Completed"),
        _tx(transaction_id="T2", payment_method=None, status="REFUNDED"),
    )
    clean = result.clean
    assert list(clean.columns) == list(TX_COLUMNS)
    assert clean["transaction_id"].tolist() == ["T1", "T2"]
    assert clean["customer_id"].tolist() == ["C1", "C1"]
    assert clean["payment_method"].tolist() == ["paypal", "unknown"]
    assert clean["status"].tolist() == ["completed", "refunded"]
    assert clean["transaction_id"].dtype == S and clean["payment_method"].dtype == S
    assert clean["amount"].dtype == np.float64
    assert str(clean["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert result.quarantine.empty
    assert result.stats == {
        "rows_read": 2,
        "rows_clean": 2,
        "rows_dropped": 0,
        "duplicates": 0,
        "values_nulled": 0,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$1,234.50", 1234.5),
        (" 12.5 ", 12.5),
        ("1,234", 1234.0),
        ("$ 7", 7.0),
        ("1e2", 100.0),
        ("0.01", 0.01),
    ],
)
def test_amount_strings_are_parsed(text: str, expected: float) -> None:
    result = _clean_tx(_tx(amount=text))
    assert result.clean["amount"].tolist() == [pytest.approx(expected)]


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-01T10:00:00Z",
        "2024-01-01T12:00:00+02:00",
        "2024-01-01T05:30:00-04:30",
        "2024-01-01T12:00:00+0200",
        "2024-01-01T12:00:00+02",
        "2024-01-01 10:00:00",
        "2024-01-01T10:00:00",
        "2024-01-01 12:00:00+02:00",
        "2024-01-01T10:00:00.000Z",
        "2024-01-01T10:00Z",
    ],
)
def test_timestamp_variants_are_the_same_utc_instant(text: str) -> None:
    result = _clean_tx(_tx(timestamp=text))
    assert result.clean["timestamp"].tolist() == [pd.Timestamp("2024-01-01T10:00:00Z")], result.quarantine


def test_timestamp_fractional_seconds_and_date_only() -> None:
    result = _clean_tx(
        _tx(transaction_id="T1", timestamp="2024-01-01T12:00:00.123456+02:00"),
        _tx(transaction_id="T2", timestamp="2024-01-01"),
    )
    assert result.clean["timestamp"].tolist() == [
        pd.Timestamp("2024-01-01T10:00:00.123456Z"),
        pd.Timestamp("2024-01-01T00:00:00Z"),
    ]


@pytest.mark.parametrize(
    ("override", "field", "reason"),
    [
        ({"transaction_id": None}, "transaction_id", "transaction_id is missing"),
        ({"transaction_id": "  "}, "transaction_id", "transaction_id is missing"),
        ({"customer_id": None}, "customer_id", "customer_id is missing"),
        ({"customer_id": "C404"}, "customer_id", "customer_id 'C404' is not a known customer"),
        ({"amount": None}, "amount", "amount is missing"),
        ({"amount": "12abc"}, "amount", "amount '12abc' is not a number"),
        ({"amount": "1e400"}, "amount", "amount '1e400' is not a number"),
        ({"amount": "1.2.3"}, "amount", "amount '1.2.3' is not a number"),
        ({"amount": "-5"}, "amount", "amount -5 is not positive"),
        ({"amount": "0"}, "amount", "amount 0 is not positive"),
        ({"timestamp": None}, "timestamp", "timestamp is missing"),
        ({"timestamp": "yesterday"}, "timestamp", "timestamp 'yesterday' is not a valid ISO-8601 time"),
        (
            {"timestamp": "2024-06-01T02:00:00+01:00"},
            "timestamp",
            "timestamp 2024-06-01T02:00:00+01:00 is after the drop arrived (2024-06-01T00:00:00Z)",
        ),
        ({"status": None}, "status", "status is missing"),
        (
            {"status": "Shipped"},
            "status",
            "status 'Shipped' is not one of completed, pending, refunded, failed",
        ),
    ],
)
def test_each_drop_reason_is_quarantined_and_good_rows_survive(override: dict, field: str, reason: str) -> None:
    result = _clean_tx(_tx(transaction_id="GOOD"), _tx(**{"transaction_id": "BAD", **override}))
    assert result.clean["transaction_id"].tolist() == ["GOOD"]
    q = result.quarantine
    assert list(q.columns) == list(QUARANTINE_COLUMNS)
    assert len(q) == 1
    row = q.iloc[0]
    assert (row["field"], row["reason"], row["action"]) == (field, reason, "row_dropped")
    assert (row["source_file"], row["source_row"]) == ("drop_1", 2)
    expected_value = override.get(field, _tx()[field])
    assert (row["value"] if pd.notna(row["value"]) else None) == expected_value
    assert result.stats["rows_dropped"] == 1 and result.stats["rows_clean"] == 1


def test_timestamp_exactly_at_arrival_is_kept() -> None:
    result = _clean_tx(_tx(timestamp="2024-06-01T00:00:00Z"))
    assert len(result.clean) == 1


def test_duplicate_transaction_ids_across_drops_keep_the_latest() -> None:
    old = _frame(
        [
            _tx(transaction_id="T1", amount="10", source_file="b_old", source_row=1, arrived_at="2024-05-01"),
            _tx(transaction_id="T1", amount="20", source_file="b_old", source_row=2, arrived_at="2024-05-01"),
            _tx(transaction_id="T2", amount="5", source_file="b_old", source_row=3, arrived_at="2024-05-01"),
        ],
        TX_COLUMNS,
    )
    new = _frame(
        [_tx(transaction_id="T1", amount="30", source_file="a_new", source_row=7, arrived_at="2024-05-20")],
        TX_COLUMNS,
    )
    raw = pd.concat([new, old], ignore_index=True)  # as the shell concatenates drops: multi-chunk columns
    result = clean_transactions(raw, KNOWN)
    clean = result.clean.set_index("transaction_id")
    assert clean.loc["T1", "amount"] == 30.0  # latest arrival wins although its file name sorts first
    assert clean.loc["T2", "amount"] == 5.0
    q = result.quarantine
    assert q["action"].tolist() == ["duplicate_dropped", "duplicate_dropped"]
    assert q["source_row"].tolist() == [1, 2]
    assert q["record_id"].tolist() == ["T1", "T1"]
    assert "a_new row 7" in q["reason"].iloc[0]
    assert result.stats["duplicates"] == 2 and result.stats["rows_dropped"] == 0


def test_duplicates_within_one_drop_keep_the_last_row() -> None:
    result = _clean_tx(_tx(amount="1"), _tx(amount="2", status="refunded"))
    assert result.clean[["amount", "status"]].values.tolist() == [[2.0, "refunded"]]


def test_invalid_later_copy_does_not_replace_a_valid_earlier_one() -> None:
    result = _clean_tx(_tx(amount="10"), _tx(amount="oops"))
    assert result.clean["amount"].tolist() == [10.0]
    assert result.quarantine["action"].tolist() == ["row_dropped"]


def test_arrived_at_argument_by_source_file() -> None:
    raw = _frame([_tx(source_file="late"), _tx(transaction_id="T2", source_file="early")], TX_COLUMNS)
    raw = pd.concat([raw, _frame([_tx(transaction_id="T3", source_file="unlisted")], TX_COLUMNS)], ignore_index=True)
    raw = raw.drop(columns="arrived_at")
    arrivals = pd.Series(pd.to_datetime(["2024-02-01", "2023-12-01"], utc=True), index=["late", "early"])
    result = clean_transactions(raw, KNOWN, arrivals)
    assert result.clean["transaction_id"].tolist() == ["T1", "T3"]  # no arrival known for T3: no check
    assert "after the drop arrived (2023-12-01T00:00:00Z)" in result.quarantine["reason"].iloc[0]


def test_numeric_customer_id_from_json_matches_known_customer() -> None:
    data = json.dumps({**_tx(), "customer_id": 123, "amount": 12.5}).encode() + b"\n"
    raw = raw_to_frame(read_transactions_file(io.BytesIO(data), "t.jsonl"))
    raw["arrived_at"] = ARRIVED
    result = clean_transactions(raw, pd.Series(["123"], dtype=S))
    assert result.clean["customer_id"].tolist() == ["123"]
    assert result.clean["amount"].tolist() == [12.5]


def test_empty_transactions() -> None:
    result = clean_transactions(_frame([], TX_COLUMNS), KNOWN)
    assert list(result.clean.columns) == list(TX_COLUMNS) and result.clean.empty
    assert list(result.quarantine.columns) == list(QUARANTINE_COLUMNS)
    assert result.stats["rows_read"] == 0


# ----------------------------------------------------------------------------------------------------
# customers


def test_clean_customers_types() -> None:
    result = clean_customers(_frame([_cust(loyalty_points="1,200"), _cust(customer_id="C2", age=None)], CUST_COLUMNS))
    clean = result.clean
    assert list(clean.columns) == list(CUST_COLUMNS)
    assert clean["customer_id"].dtype == S and clean["region"].dtype == S
    assert clean["age"].tolist()[0] == 35.0 and np.isnan(clean["age"].tolist()[1])
    assert clean["loyalty_points"].tolist() == [1200.0, 100.0]
    assert clean["signup_date"].tolist() == [pd.Timestamp("2020-01-01T00:00:00Z")] * 2
    assert str(clean["signup_date"].dtype) == "datetime64[ns, UTC]"
    assert result.quarantine.empty  # a missing age is just missing, not a quarantine event


def test_customer_with_bad_age_is_kept_with_nan_and_quarantined() -> None:
    result = clean_customers(_frame([_cust(age="250"), _cust(customer_id="C2")], CUST_COLUMNS))
    clean = result.clean.set_index("customer_id")
    assert np.isnan(clean.loc["C1", "age"]) and clean.loc["C1", "region"] == "East"
    assert clean.loc["C2", "age"] == 35.0
    q = result.quarantine
    assert q[["record_id", "field", "value", "reason", "action"]].values.tolist() == [
        ["C1", "age", "250", "age 250 outside [13, 110]", "value_nulled"]
    ]
    assert result.stats["values_nulled"] == 1 and result.stats["rows_dropped"] == 0


@pytest.mark.parametrize(
    ("override", "field", "reason"),
    [
        ({"age": "thirty"}, "age", "age 'thirty' is not a number"),
        ({"age": "12"}, "age", "age 12 outside [13, 110]"),
        ({"loyalty_points": "-5"}, "loyalty_points", "loyalty_points -5 is negative"),
        ({"loyalty_points": "lots"}, "loyalty_points", "loyalty_points 'lots' is not a number"),
        ({"signup_date": "someday"}, "signup_date", "signup_date 'someday' is not a valid date"),
        (
            {"signup_date": "2030-01-01"},
            "signup_date",
            "signup_date 2030-01-01 is after the drop arrived (2024-06-01T00:00:00Z)",
        ),
    ],
)
def test_each_bad_customer_value_is_nulled_not_dropped(override: dict, field: str, reason: str) -> None:
    result = clean_customers(_frame([_cust(**override)], CUST_COLUMNS))
    assert result.clean["customer_id"].tolist() == ["C1"]
    assert pd.isna(result.clean[field].iloc[0])
    q = result.quarantine.iloc[0]
    assert (q["field"], q["value"], q["reason"], q["action"]) == (
        field,
        override[field],
        reason,
        "value_nulled",
    )


def test_customer_without_id_is_dropped() -> None:
    result = clean_customers(_frame([_cust(customer_id=" "), _cust(customer_id="C2")], CUST_COLUMNS))
    assert result.clean["customer_id"].tolist() == ["C2"]
    q = result.quarantine.iloc[0]
    assert (q["field"], q["reason"], q["action"], q["source_row"]) == (
        "customer_id",
        "customer_id is missing",
        "row_dropped",
        1,
    )
    assert pd.isna(q["record_id"])
    assert result.stats["rows_dropped"] == 1


def test_latest_customer_record_wins_across_drops() -> None:
    raw = _frame(
        [
            _cust(age="40", region="West", source_file="customers_b", arrived_at="2024-05-02"),
            _cust(age="41", region="north", source_file="customers_a", arrived_at="2024-05-03"),
            _cust(age="39", region="East", source_file="customers_c", arrived_at="2024-05-01"),
            _cust(
                customer_id="C1 ",
                age="99",
                region="South",
                source_file="customers_0",
                arrived_at="2024-04-01",
            ),
        ],
        CUST_COLUMNS,
    )
    result = clean_customers(raw)
    assert result.clean[["customer_id", "age", "region"]].values.tolist() == [["C1", 41.0, "North"]]
    assert sorted(result.quarantine["source_file"]) == ["customers_0", "customers_b", "customers_c"]
    assert set(result.quarantine["action"]) == {"duplicate_dropped"}
    assert result.stats["duplicates"] == 3


def test_latest_customer_record_same_arrival_uses_file_then_row() -> None:
    raw = _frame(
        [
            _cust(age="20", source_file="customers_2", source_row=1),
            _cust(age="21", source_file="customers_2", source_row=2),
            _cust(age="22", source_file="customers_1", source_row=9),
        ],
        CUST_COLUMNS,
    )
    assert clean_customers(raw).clean["age"].tolist() == [21.0]


# ----------------------------------------------------------------------------------------------------
# region


def test_region_variants_normalise_to_one_value() -> None:
    variants = pd.Series([" north  east", "NORTH EAST", "North East", "north\teast ", "nOrTh EaSt"], dtype=S)
    assert normalise_region(variants).unique().tolist() == ["North East"]
    assert {normalise_region_value(v) for v in variants} == {"North East"}


def test_region_missing_becomes_unknown_and_index_is_kept() -> None:
    values = pd.Series([None, "  ", "null", "west"], index=[10, 11, 12, 13], dtype=object)
    out = normalise_region(values)
    assert out.tolist() == ["Unknown", "Unknown", "Unknown", "West"]
    assert out.index.tolist() == [10, 11, 12, 13]
    assert normalise_region_value(None) == "Unknown"


def test_customer_regions_are_normalised_in_clean_output() -> None:
    raw = _frame(
        [
            _cust(region=" east "),
            _cust(customer_id="C2", region="EAST"),
            _cust(customer_id="C3", region=None),
        ],
        CUST_COLUMNS,
    )
    assert clean_customers(raw).clean["region"].tolist() == ["East", "East", "Unknown"]


# ----------------------------------------------------------------------------------------------------
# chunked transaction cleaning, duplicate resolution and categorical lineage


def _messy_raw() -> pd.DataFrame:
    """Two drops (the one whose name sorts first arrived last) with every drop reason, untidy text and
    transaction_ids repeated across the whole frame, so duplicates span any chunking."""
    bad = [
        {"transaction_id": None},
        {"customer_id": "C404"},
        {"amount": "oops"},
        {"amount": "-1"},
        {"timestamp": "2030-01-01T00:00:00Z"},
        {"status": "Shipped"},
        {"customer_id": " "},
    ]
    rows = []
    for i in range(40):
        late = i % 3 == 0
        row = _tx(
            transaction_id=f" T{i % 9} " if i % 4 == 0 else f"T{i % 9}",
            customer_id="C1" if i % 2 else "C2",
            amount=f"${i + 1},000.5" if i % 5 == 0 else str(i + 1),
            payment_method=None if i % 6 == 0 else " CARD ",
            status=" Completed " if i % 2 else "refunded",
            source_file="a_late" if late else "b_early",
            source_row=i + 1,
            arrived_at="2024-06-02" if late else "2024-06-01",
        )
        if i % 5 == 2:
            row.update(bad[(i // 5) % len(bad)])
        rows.append(row)
    return _frame(rows, TX_COLUMNS)


def _assert_same_result(left: cleaning.CleanResult, right: cleaning.CleanResult) -> None:
    pd.testing.assert_frame_equal(left.clean, right.clean)
    pd.testing.assert_frame_equal(left.quarantine, right.quarantine)
    assert left.stats == right.stats


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 7, 16])
def test_chunked_cleaning_equals_single_chunk(monkeypatch: pytest.MonkeyPatch, chunk_rows: int) -> None:
    raw = _messy_raw()
    whole = clean_transactions(raw, KNOWN)
    assert len(raw) < tx_cleaning.TX_CHUNK_ROWS  # the reference ran as one chunk
    monkeypatch.setattr(tx_cleaning, "TX_CHUNK_ROWS", chunk_rows)
    _assert_same_result(clean_transactions(raw, KNOWN), whole)
    # the reference itself is right: one row per id, the latest valid copy (a_late arrived later)
    clean = whole.clean
    assert sorted(clean["transaction_id"]) == [f"T{i}" for i in range(9)]
    assert whole.stats["duplicates"] == 40 - whole.stats["rows_dropped"] - 9
    valid = raw.drop(index=whole.quarantine.query("action == 'row_dropped'")["source_row"] - 1)
    valid = valid.assign(tid=valid["transaction_id"].str.strip(), late=valid["source_file"] == "a_late")
    latest = valid.sort_values(["late", "source_row"]).groupby("tid").tail(1).sort_index()
    assert clean["transaction_id"].tolist() == latest["tid"].tolist()
    dup = whole.quarantine[whole.quarantine["action"] == "duplicate_dropped"]
    assert len(dup) == whole.stats["duplicates"]
    assert set(dup["source_row"]).isdisjoint(latest["source_row"])


def test_duplicate_resolution_is_exact_when_hashes_collide(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _messy_raw()
    expected = clean_transactions(raw, KNOWN)
    monkeypatch.setattr(tx_cleaning, "string_hashes", lambda values: np.zeros(len(values), dtype=np.uint64))
    monkeypatch.setattr(tx_cleaning, "TX_CHUNK_ROWS", 5)
    _assert_same_result(clean_transactions(raw, KNOWN), expected)


def test_long_ids_equal_in_their_hashed_head_are_still_told_apart() -> None:
    head = "X" * 100  # longer than the hashed prefix: these ids share a hash and are compared exactly
    result = _clean_tx(
        _tx(transaction_id=head + "a", amount="1"),
        _tx(transaction_id=head + "b", amount="2"),
        _tx(transaction_id=head + "a", amount="3"),
    )
    assert result.clean[["transaction_id", "amount"]].values.tolist() == [[head + "b", 2.0], [head + "a", 3.0]]
    assert result.quarantine["source_row"].tolist() == [1]
    assert result.stats["duplicates"] == 1


def test_string_hashes_depend_only_on_the_value() -> None:
    values = ["T1", "", "T1 ", "abcdefgh", "abcdefghi", "é", "x" * 70, "T1", "abcdefgh", None]
    whole = dedup.string_hashes(pa.array(values, type=pa.string()))
    assert whole[0] == whole[7] and whole[3] == whole[8]
    assert len(set(whole[:7].tolist())) == 7
    pieces = pa.chunked_array([pa.array(values[:4], pa.large_string()), pa.array(values[4:], pa.large_string())])
    assert dedup.string_hashes(pieces).tolist() == whole.tolist()
    assert dedup.string_hashes(pa.array(values).slice(3, 5)).tolist() == whole[3:8].tolist()


def test_categorical_source_file_gives_the_same_result_as_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _messy_raw()
    categorical = raw.assign(source_file=raw["source_file"].astype(pd.CategoricalDtype(["b_early", "a_late", "x"])))
    expected = clean_transactions(raw, KNOWN)
    monkeypatch.setattr(tx_cleaning, "TX_CHUNK_ROWS", 4)
    result = clean_transactions(categorical, KNOWN)
    _assert_same_result(result, expected)
    assert result.quarantine["source_file"].dtype == S
    by_file = pd.Series(pd.to_datetime(["2024-06-02", "2024-06-01"], utc=True), index=["a_late", "b_early"])
    _assert_same_result(
        clean_transactions(categorical.drop(columns="arrived_at"), KNOWN, by_file),
        clean_transactions(raw.drop(columns="arrived_at"), KNOWN, by_file),
    )


def test_clean_customers_with_categorical_source_file() -> None:
    raw = _frame(
        [
            _cust(age="20", source_file="customers_2", source_row=1),
            _cust(age="21", source_file="customers_2", source_row=2),
            _cust(age="22", source_file="customers_1", source_row=9),
            _cust(customer_id=None, source_file="customers_1", source_row=10),
        ],
        CUST_COLUMNS,
    )
    categorical = raw.assign(source_file=raw["source_file"].astype("category"))
    _assert_same_result(clean_customers(categorical), clean_customers(raw))
    assert clean_customers(categorical).clean["age"].tolist() == [21.0]
