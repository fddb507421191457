"""Tests for the sample data generator (hvbuyer_assets.datagen)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pytest

from hvbuyer_assets import datagen

N = 2000
CUSTOMER_COLUMNS = ["customer_id", "age", "region", "signup_date", "loyalty_points"]
TRANSACTION_COLUMNS = ["transaction_id", "customer_id", "amount", "timestamp", "payment_method", "status"]


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return datagen.write_drop(tmp_path_factory.mktemp("raw"), N, seed=7)


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return datagen.generate(N, seed=7)


def _amounts(values: pd.Series) -> pd.Series:
    cleaned = values.str.strip().str.replace("$", "", regex=False).str.replace(",", "", regex=False)
    return pd.to_numeric(cleaned, errors="coerce")


def _timestamps(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values.astype(object), format="ISO8601", utc=True, errors="coerce")


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


def _read_jsonl(path: Path) -> pd.DataFrame:
    return pajson.read_json(path).to_pandas()


def test_same_arguments_give_byte_identical_files(tmp_path: Path, drop: tuple[Path, Path]) -> None:
    again = datagen.write_drop(tmp_path, N, seed=7)
    for first, second in zip(drop, again, strict=True):
        assert first.read_bytes() == second.read_bytes()
    other = datagen.write_drop(tmp_path / "other", N, seed=8)
    assert other[1].read_bytes() != drop[1].read_bytes()


def test_generate_returns_exactly_what_is_written(drop: tuple[Path, Path], frames) -> None:
    customers, transactions = frames
    assert (customers.dtypes == "string[pyarrow]").all() and (transactions.dtypes == "string[pyarrow]").all()
    written_customers = _read_csv(drop[0])
    expected_customers = customers.astype(object).where(customers.notna(), np.nan)
    pd.testing.assert_frame_equal(written_customers, expected_customers)
    rows = [json.loads(line) for line in drop[1].read_text().splitlines()]
    assert len(rows) == len(transactions)
    written = pd.DataFrame(rows, columns=TRANSACTION_COLUMNS)
    expected = transactions.astype(object).where(transactions.notna(), None)
    pd.testing.assert_frame_equal(written.where(written.notna(), None), expected)


def test_files_follow_the_contract(drop: tuple[Path, Path]) -> None:
    customers_path, transactions_path = drop
    assert customers_path.name == "customers.csv" and transactions_path.name == "transactions.json"
    assert customers_path.read_text().splitlines()[0] == ",".join(CUSTOMER_COLUMNS)
    lines = transactions_path.read_bytes().splitlines()
    rows = [json.loads(line) for line in lines]
    assert all(set(row) <= set(TRANSACTION_COLUMNS) for row in rows)
    assert all(isinstance(row.get("amount"), str | None) for row in rows)  # never a JSON number
    table = pajson.read_json(io.BytesIO(transactions_path.read_bytes()))  # the benchmark anchor
    assert table.column_names == TRANSACTION_COLUMNS and table.num_rows == len(lines)
    statuses = {row["status"].strip().lower() for row in rows}
    assert statuses == set(datagen.STATUSES)
    csv = pacsv.read_csv(
        customers_path, convert_options=pacsv.ConvertOptions(column_types={c: "string" for c in CUSTOMER_COLUMNS})
    )
    assert csv.column_names == CUSTOMER_COLUMNS
    assert csv.num_rows > N  # duplicates and id-less rows come on top of the N customers


def test_realistic_distributions(frames) -> None:
    customers, transactions = frames
    first = customers.drop_duplicates("customer_id").dropna(subset=["customer_id"])
    assert len(first) == N and first.customer_id.iloc[0] == "C0000001" and first.customer_id.is_unique
    ages = pd.to_numeric(first.age, errors="coerce")
    plausible = ages[(ages >= 18) & (ages <= 85)]
    assert 34 < plausible.mean() < 43 and plausible.median() < plausible.mean()  # right-skewed
    shares = first.region.str.strip().str.title().value_counts(normalize=True)
    assert shares["North"] > shares["West"] > shares["Central"]
    signup = pd.to_datetime(first.signup_date, utc=True)
    assert signup.min() < pd.Timestamp("2022-01-01", tz="UTC")
    assert (signup > pd.Timestamp("2024-06-30", tz="UTC")).any()  # some sign up inside the window
    points = pd.to_numeric(first.loyalty_points).dropna()
    assert points.max() > 20 * points.median()  # heavy tail
    assert 15 < len(transactions) / N < 26
    status = transactions.status.str.strip().str.lower().value_counts(normalize=True)
    assert 0.82 < status["completed"] < 0.88
    assert {"card", "paypal", "bank_transfer", "gift_card"} <= set(transactions.payment_method.dropna())
    amounts = _amounts(transactions.amount)
    assert 30 < amounts.median() < 90 and (amounts >= 300).mean() > 0.02


def test_every_kind_of_mess_is_present(frames) -> None:
    customers, transactions = frames
    ages = pd.to_numeric(customers.age, errors="coerce")
    assert customers.age.isna().any() and ((ages < 13) | (ages > 110)).any()
    region = customers.region.dropna()
    assert (region != region.str.strip()).any()
    assert (region.str.strip().str.upper() == region.str.strip()).any()
    assert customers.region.isna().any() and customers.signup_date.isna().any()
    assert (pd.to_numeric(customers.loyalty_points, errors="coerce") < 0).any()
    assert customers.customer_id.isna().any()
    repeated = customers[customers.customer_id.duplicated(keep=False) & customers.customer_id.notna()]
    assert len(repeated) > 0
    changed = repeated.groupby("customer_id")[["region", "loyalty_points"]].nunique(dropna=False)
    assert (changed.sum(axis=1) >= 1).all()  # the later row carries an updated field

    amount = transactions.amount
    assert amount.str.startswith("$", na=False).any()
    assert (amount.str.contains(",", regex=False, na=False) & ~amount.str.startswith("$", na=False)).any()
    assert (amount == "").any() and amount.isna().any() and (amount != amount.str.strip()).any()
    ts = transactions.timestamp
    assert ts.str.endswith("Z", na=False).mean() > 0.9
    assert ts.str.endswith("+02:00", na=False).any() and ts.str.endswith("-05:00", na=False).any()
    assert ts.isna().any() and (ts.notna() & _timestamps(ts).isna()).any()
    assert transactions.duplicated(keep=False).any()
    assert transactions.transaction_id.isna().any() and transactions.customer_id.isna().any()
    known = set(customers.customer_id.dropna())
    assert (~transactions.customer_id.dropna().isin(known)).any()


def test_offset_timestamps_are_the_same_instant_inside_the_window(frames) -> None:
    _, transactions = frames
    ts = _timestamps(transactions.timestamp).dropna()
    as_of = pd.Timestamp(datagen.DEFAULT_AS_OF, tz="UTC")
    assert ts.min() > as_of - pd.Timedelta(days=datagen.DEFAULT_DAYS) and ts.max() <= as_of
    # lines are written in time order, so an offset timestamp sits between its UTC neighbours
    in_order = ts.reset_index(drop=True)
    offset = transactions.timestamp.loc[ts.index].reset_index(drop=True).str.contains(r"[+-]\d\d:\d\d$")
    position = np.flatnonzero(offset.to_numpy())
    position = position[(position > 0) & (position < len(in_order) - 1)]
    assert len(position) > 0
    assert (in_order.iloc[position - 1].to_numpy() <= in_order.iloc[position].to_numpy()).all()
    assert (in_order.iloc[position].to_numpy() <= in_order.iloc[position + 1].to_numpy()).all()


def test_later_drop_describes_same_customers_with_new_transactions(tmp_path: Path) -> None:
    base = datagen.write_drop(tmp_path, N, seed=7)
    later = datagen.write_drop(tmp_path, N, seed=7, as_of="2026-09-28", days=90, drop="q3")
    assert later == (tmp_path / "customers_q3.csv", tmp_path / "transactions_q3.json")
    assert later[0].read_bytes() == base[0].read_bytes()
    first, second = _read_jsonl(base[1]), _read_jsonl(later[1])
    assert not set(first.transaction_id.dropna()) & set(second.transaction_id.dropna())
    ts = _timestamps(second.timestamp).dropna()
    assert ts.min() > pd.Timestamp("2026-06-30", tz="UTC")
    assert ts.max() <= pd.Timestamp("2026-09-28", tz="UTC")
    assert 3 < len(second) / N < 8


def test_refuses_to_overwrite_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    customers_path, transactions_path = datagen.write_drop(tmp_path, 50, seed=1)
    before = transactions_path.read_bytes()
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        datagen.write_drop(tmp_path, 50, seed=2)
    assert transactions_path.read_bytes() == before
    assert datagen.main(["--customers", "50", "--out", str(tmp_path), "--seed", "2"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["customers.csv", "transactions.json"]
    # ^ no temp files left behind
    assert datagen.main(["--customers", "50", "--out", str(tmp_path), "--seed", "2", "--force"]) == 0
    assert transactions_path.read_bytes() != before
    summary = capsys.readouterr().out
    assert summary.count("\n") == 1 and str(customers_path) in summary and str(transactions_path) in summary


def test_cli_writes_named_drop_into_new_folder(tmp_path: Path) -> None:
    out = tmp_path / "raw" / "nested"
    assert datagen.main(["--customers", "30", "--out", str(out), "--drop", "extra", "--days", "30"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["customers_extra.csv", "transactions_extra.json"]
    with pytest.raises(ValueError, match="drop name"):
        datagen.write_drop(out, 30, drop="../evil")


def test_demographics_drift_shifts_age_and_region_mix() -> None:
    base, _ = datagen.generate(N, seed=3, days=30)
    drifted, transactions = datagen.generate(N, seed=3, days=30, drift="demographics")

    def clean(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        first = frame.dropna(subset=["customer_id"]).drop_duplicates("customer_id")
        ages = pd.to_numeric(first.age, errors="coerce")
        regions = first.region.str.strip().str.title().value_counts(normalize=True)
        return ages[(ages >= 18) & (ages <= 85)], regions

    (age0, region0), (age1, region1) = clean(base), clean(drifted)
    assert 6 < age1.mean() - age0.mean() < 10
    assert region1["West"] - region0["West"] > 0.07 and region0["North"] - region1["North"] > 0.1
    assert transactions.transaction_id.dropna().str.startswith("T20260630D-").all()


def test_behaviour_drift_scales_amounts_for_the_same_customers() -> None:
    base_customers, base = datagen.generate(N, seed=3, days=180)
    drift_customers, drifted = datagen.generate(N, seed=3, days=180, drift="behaviour")
    pd.testing.assert_frame_equal(base_customers, drift_customers)
    ratio = _amounts(drifted.amount).median() / _amounts(base.amount).median()
    assert 1.4 < ratio < 1.8
    assert 0.65 < len(drifted) / len(base) < 0.85


def test_concept_drift_keeps_customers_and_spending_but_not_who_spends() -> None:
    """``concept``: the same customers and the same spending overall, but a customer's spend no longer follows
    their own earlier spend (each one spends like another customer)."""
    window = {"seed": 3, "as_of": "2026-12-27", "days": 180}

    def spend(transactions: pd.DataFrame) -> pd.Series:
        amounts = _amounts(transactions.amount).groupby(transactions.customer_id).sum()
        return amounts.reindex(customers.customer_id.dropna().unique(), fill_value=0.0)

    customers, earlier = datagen.generate(N, seed=3, days=180)  # the 180 days up to 2026-06-30
    concept_customers, concept = datagen.generate(N, drift="concept", **window)
    _, same = datagen.generate(N, **window)
    pd.testing.assert_frame_equal(customers, concept_customers)
    assert concept.transaction_id.dropna().str.startswith("T20261227C-").all()
    assert 0.9 < len(concept) / len(same) < 1.1
    assert 0.9 < _amounts(concept.amount).median() / _amounts(same.amount).median() < 1.1
    kept = spend(earlier).corr(spend(same), method="spearman")
    shifted = spend(earlier).corr(spend(concept), method="spearman")
    assert kept > 0.4 and abs(shifted) < 0.1, (kept, shifted)


def test_history_predicts_future_large_purchases() -> None:
    """The planted signal: past spend ranks customers by their chance of a >= $300 purchase in 90 days."""
    _, tx = datagen.generate(4000, seed=11)
    tx = tx.dropna(subset=["customer_id"]).drop_duplicates()
    tx = tx.assign(amount=_amounts(tx.amount), ts=_timestamps(tx.timestamp), status=tx.status.str.strip().str.lower())
    tx = tx[(tx.status == "completed") & (tx.amount > 0) & tx.ts.notna()]
    cutoff = pd.Timestamp(datagen.DEFAULT_AS_OF, tz="UTC") - pd.Timedelta(days=90)
    past = tx[tx.ts <= cutoff].groupby("customer_id").amount.sum()
    future = tx[(tx.ts > cutoff) & (tx.amount >= 300)].customer_id.unique()
    label = past.index.isin(future)
    top, bottom = past >= past.quantile(0.75), past <= past.quantile(0.25)
    assert 0.05 < label.mean() < 0.25
    assert label[top.to_numpy()].mean() > 3 * label[bottom.to_numpy()].mean()


def test_invalid_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="drift"):
        datagen.generate(10, drift="sideways")
    with pytest.raises(ValueError, match="n_customers"):
        datagen.generate(0)
    assert datagen.main(["--customers", "10", "--out", str(tmp_path), "--as-of", "not-a-date"]) == 2
    assert not any(tmp_path.iterdir())
