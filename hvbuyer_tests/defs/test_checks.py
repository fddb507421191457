"""Every asset check fails where it must (the pipeline tests show them passing on good data)."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd

from hvbuyer_assets.core import cleaning
from hvbuyer_assets.core.cleaning.chunks import ListStage, clean_chunks
from hvbuyer_assets.core.cleaning.quarantine import quarantine_frame
from hvbuyer_assets.core.sources import CUSTOMERS, TRANSACTIONS
from hvbuyer_assets.defs.features import checks as feature_checks
from hvbuyer_assets.defs.model import checks as model_checks
from hvbuyer_assets.defs.raw import checks as raw_checks

S = pd.StringDtype("pyarrow")
T0 = pd.Timestamp("2026-01-01", tz="UTC")


def _by_name(results) -> dict[str, dg.AssetCheckResult]:
    return {r.check_name: r for r in results}


def _customers(**overrides) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "customer_id": pd.array(["C1", "C2"], dtype=S),
            "age": [30.0, np.nan],
            "region": pd.array(["East", "West"], dtype=S),
            "signup_date": [T0, pd.NaT],
            "loyalty_points": [10.0, 0.0],
        }
    )
    for key, value in overrides.items():
        frame[key] = value
    return frame


def _transactions(**overrides) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "transaction_id": pd.array(["T1", "T2"], dtype=S),
            "customer_id": pd.array(["C1", "C2"], dtype=S),
            "amount": [10.0, 350.0],
            "timestamp": [T0, T0],
            "payment_method": pd.array(["card", "card"], dtype=S),
            "status": pd.array(["completed", "refunded"], dtype=S),
        }
    )
    for key, value in overrides.items():
        frame[key] = value
    return frame


def _result(clean: pd.DataFrame, rows_read: int = 100, rows_dropped: int = 0) -> cleaning.CleanResult:
    stats = {
        "rows_read": rows_read,
        "rows_clean": len(clean),
        "rows_dropped": rows_dropped,
        "duplicates": 0,
        "values_nulled": 0,
    }
    return cleaning.CleanResult(clean=clean, quarantine=quarantine_frame([]), stats=stats)


def _clean_results(source, result: cleaning.CleanResult, *needed: pd.DataFrame):
    """The clean checks of ``result`` as the clean step computes them: through the chunked cleaning (one chunk),
    over a raw frame holding the clean rows' keys."""
    n = len(result.clean)
    raw = pd.DataFrame(
        {
            source.key: result.clean[source.key].astype(S),
            "source_file": pd.Series(["drop.csv"] * n, dtype=S),
            "source_row": np.arange(1, n + 1, dtype=np.int64),
            "arrived_at": pd.Series([T0] * n),
        }
    )
    chunked = clean_chunks(
        [raw], lambda _: result, source.key, ListStage(), lambda r: raw_checks.bad_rows(source, r, *needed)
    )
    return raw_checks.clean_results(source, chunked)


def test_contract_check_fails_and_names_the_file() -> None:
    result = raw_checks.contract_result("customers_contract", ["customers_b.csv: missing column(s) age"])
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert "customers_b.csv" in result.description and "age" in result.description
    assert raw_checks.contract_result("customers_contract", []).passed


def test_customer_checks_pass_on_clean_frame_and_fail_on_bad_ones() -> None:
    assert all(r.passed for r in _clean_results(CUSTOMERS, _result(_customers())))
    dup = _by_name(_clean_results(CUSTOMERS, _result(_customers(customer_id=pd.array(["C1", "C1"], dtype=S)))))
    assert not dup["customer_ids_unique"].passed
    bad = _by_name(_clean_results(CUSTOMERS, _result(_customers(age=[300.0, 20.0], loyalty_points=[0.0, -1.0]))))
    assert not bad["customer_values_in_range"].passed and "2 customers" in bad["customer_values_in_range"].description


def test_quarantine_share_warns_then_errors() -> None:
    ok, warn, error = (
        _by_name(_clean_results(CUSTOMERS, _result(_customers(), rows_dropped=n)))["customer_quarantine_share"]
        for n in (2, 10, 50)
    )
    assert ok.passed
    assert not warn.passed and warn.severity == dg.AssetCheckSeverity.WARN
    assert not error.passed and error.severity == dg.AssetCheckSeverity.ERROR


def test_transaction_checks_fail_on_duplicates_invalid_values_and_orphans() -> None:
    known = pd.DataFrame({"customer_id": pd.Series(["C1", "C2"], dtype=S)})  # the clean customers
    assert all(r.passed for r in _clean_results(TRANSACTIONS, _result(_transactions()), known))
    dup = _transactions(transaction_id=pd.array(["T1", "T1"], dtype=S))
    assert not _by_name(_clean_results(TRANSACTIONS, _result(dup), known))["transaction_ids_unique"].passed
    invalid = _transactions(amount=[-5.0, np.nan], status=pd.array(["completed", "lost"], dtype=S))
    result = _by_name(_clean_results(TRANSACTIONS, _result(invalid), known))["transaction_values_valid"]
    assert not result.passed and result.description.startswith("2 ")
    orphan = _transactions(customer_id=pd.array(["C1", "C9"], dtype=S))
    assert not _by_name(_clean_results(TRANSACTIONS, _result(orphan), known))[
        "transactions_reference_known_customers"
    ].passed


def test_leakage_guard_fails_when_a_feature_uses_a_later_event() -> None:
    cutoff = pd.Series([T0, T0])
    ok = feature_checks.not_after_cutoff("c", pd.Series([T0, pd.NaT]), cutoff)
    late = feature_checks.not_after_cutoff("c", pd.Series([T0, T0 + pd.Timedelta(seconds=1)]), cutoff)
    assert ok.passed and not late.passed and late.metadata["rows_after_cutoff"].value == 1


def test_label_prevalence_fails_outside_the_sane_range() -> None:
    def frame(train: list[int], holdout: list[int]) -> pd.DataFrame:
        return pd.DataFrame({"split": ["train"] * len(train) + ["holdout"] * len(holdout), "label": train + holdout})

    assert feature_checks.label_prevalence(frame([0] * 9 + [1], [0] * 8 + [1] * 2)).passed
    assert not feature_checks.label_prevalence(frame([0] * 10, [0] * 9 + [1])).passed  # no positives to learn
    assert not feature_checks.label_prevalence(frame([1] * 9 + [0], [0] * 9 + [1])).passed  # 90%: misconfigured


def test_quality_floor_requires_floor_and_beating_demographics() -> None:
    assert model_checks.quality_floor({"roc_auc": 0.8}, 0.65, 0.6).passed
    below = model_checks.quality_floor({"roc_auc": 0.55}, 0.5, 0.6)
    assert not below.passed and "below the floor" in below.description
    not_better = model_checks.quality_floor({"roc_auc": 0.7}, 0.72, 0.6)
    assert not not_better.passed and "demographics-only" in not_better.description
