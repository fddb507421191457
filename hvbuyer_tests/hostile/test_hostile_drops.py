"""Every case of the hostile corpus (``corpus.py``) through the real graph: the raw and cleaning assets with their
blocking checks, materialized by Dagster on a workspace that already holds an accepted drop.

A refused case fails its contract check with a message naming the file and the problem, materializes nothing and
replaces no stored file (interim, processed, quarantine); an accepted case succeeds with its odd values
quarantined with reasons and nothing guessed in the clean tables."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from hvbuyer_assets.core import drops
from hvbuyer_tests.hostile.corpus import CASES, HEADER, Accepted, Case, Refused, tx, write_case
from hvbuyer_tests.pipeline import Workspace, arrive, check_results, digest, read_frame, write_drop

pytestmark = pytest.mark.slow  # one Dagster run per case

BASE_AS_OF = "2026-06-30"
RAW_AND_CLEAN = [
    "raw_customers",
    "raw_transactions",
    "clean_customers",
    "quarantined_customers",
    "clean_transactions",
    "quarantined_transactions",
]
STORED_LAYERS = ("interim", "processed", "quarantine")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A small accepted drop, read and cleaned once."""
    workspace = Workspace(tmp_path_factory.mktemp("hostile") / "data")
    write_drop(workspace.raw, BASE_AS_OF, customers=300, seed=5)
    assert workspace.materialize(selection=RAW_AND_CLEAN).success
    return workspace


def _stored(root: Path) -> list[Path]:
    return [p for layer in STORED_LAYERS for p in (root / layer).rglob("*") if p.is_file()]


def _complete(raw: Path, name: str) -> str:
    """A case file is a drop of one kind: its _SUCCESS marker completes it (a partition of its own)."""
    drop = drops.drop_name(name)
    (raw / f"_SUCCESS_{drop}").write_bytes(b"")
    return drop


def _expect_value(got: object, expected: object, where: str) -> None:
    if expected is None:
        assert pd.isna(got), f"{where}: expected missing, got {got!r}"
    elif isinstance(expected, str) and isinstance(got, pd.Timestamp):
        assert got == pd.Timestamp(expected), where
    else:
        assert got == expected, f"{where}: {got!r} != {expected!r}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_drop(case: Case, base: Workspace, tmp_path: Path) -> None:
    workspace = base.copy_to(tmp_path / "data")
    path = write_case(case, workspace.raw, tmp_path / "outside")
    arrive([path], BASE_AS_OF)
    drop = _complete(workspace.raw, case.name)
    raw_before = digest([p for p in workspace.raw.iterdir() if p.is_file() and not p.is_symlink()])
    stored_before = digest(_stored(workspace.root))

    result = workspace.materialize(selection=RAW_AND_CLEAN)

    # raw files are read-only to the pipeline, whatever happens
    assert digest([p for p in workspace.raw.iterdir() if p.is_file() and not p.is_symlink()]) == raw_before
    outcome = case.outcome
    if isinstance(outcome, Refused):
        assert not result.success, f"{case.id} was accepted: {case.why}"
        evaluation = check_results(result)[outcome.check]
        message = evaluation.description or ""
        assert not evaluation.passed
        assert case.name in message and outcome.problem in message, message
        # Nothing of the refused source is stored and nothing is cleaned; only the other source's raw asset may
        # store the drop's (empty) table of its kind. The earlier drop's files stay byte for byte as they were.
        refused_raw = "raw_" + ("customers" if case.name.startswith("customers") else "transactions")
        materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        assert materialized <= {"raw_customers", "raw_transactions"} - {refused_raw}, materialized
        after = digest(_stored(workspace.root))
        assert {k: v for k, v in after.items() if k in stored_before} == stored_before  # nothing replaced
        other = {"raw_customers", "raw_transactions"} - {refused_raw}
        assert {Path(k) for k in after.keys() - stored_before.keys()} <= {
            workspace.root / "interim" / asset / f"{drop}.parquet" for asset in other
        }
        return

    assert isinstance(outcome, Accepted)
    failures = [e.event_specific_data.error.to_string() for e in result.all_events if e.is_step_failure]
    assert result.success, f"{case.id} was refused: {failures}"
    kind = "customers" if case.name.startswith("customers") else "transactions"
    quarantine = read_frame(workspace.root / "quarantine" / f"quarantined_{kind}" / f"{drop}.parquet")
    reasons = quarantine.loc[quarantine["source_file"].astype(str) == case.name, "reason"].astype(str).tolist()
    for fragment in outcome.quarantined:
        assert any(fragment in reason for reason in reasons), (fragment, reasons)
    if not outcome.quarantined:
        assert reasons == [], reasons
    clean = read_frame(workspace.root / "processed" / f"clean_{kind}" / f"{drop}.parquet")
    key = "customer_id" if kind == "customers" else "transaction_id"
    clean = clean.set_index(key) if key in clean.columns else clean
    for record_id, values in outcome.clean.items():
        assert record_id in clean.index, f"{record_id} missing from clean_{kind}"
        for column, expected in values.items():
            _expect_value(clean.loc[record_id, column], expected, f"{record_id}.{column}")
    for record_id in outcome.absent:
        assert record_id not in clean.index, record_id


def test_the_corpus_is_large_and_varied() -> None:
    assert len(CASES) >= 25 and len({c.id for c in CASES}) == len(CASES)
    refused = [c for c in CASES if isinstance(c.outcome, Refused)]
    assert len(refused) >= 10 and len(CASES) - len(refused) >= 10


def test_a_symlink_inside_the_raw_folder_is_read(base: Workspace, tmp_path: Path) -> None:
    """The symlink refusal is about leaving the raw folder, not about links as such."""
    workspace = base.copy_to(tmp_path / "data")
    target = workspace.raw / "customers_real.csv.orig"
    target.write_text("customer_id,age,region,signup_date,loyalty_points\nH9000009,33,East,2024-01-01,5\n")
    (workspace.raw / "customers_linked.csv").symlink_to(target.name)
    arrive([target], BASE_AS_OF)
    drop = _complete(workspace.raw, "customers_linked.csv")
    assert workspace.materialize(selection=RAW_AND_CLEAN).success
    clean = read_frame(workspace.root / "processed" / "clean_customers" / f"{drop}.parquet")
    assert "H9000009" in set(clean["customer_id"].astype(str))
    shutil.rmtree(workspace.root)


# ------------------------------------------------------------------ rebuilds and small or wholly bad drops

# A header-only file of each kind (a CSV header; an empty JSON array), replacing a file of the accepted base drop.
_EMPTIED = {"customers": ("customers.csv", HEADER + "\n"), "transactions": ("transactions.json", "[]")}


@pytest.mark.parametrize("kind", sorted(_EMPTIED))
def test_a_header_only_file_cannot_empty_a_stored_drop(kind: str, base: Workspace, tmp_path: Path) -> None:
    """Re-exporting one of a stored drop's files without rows and rebuilding that drop is refused by the contract,
    naming the emptied file; every stored partition (interim, processed, quarantine) stays byte for byte."""
    workspace = base.copy_to(tmp_path / "data")
    name, content = _EMPTIED[kind]
    (workspace.raw / name).write_text(content)
    arrive([workspace.raw / name], BASE_AS_OF)
    stored_before = digest(_stored(workspace.root))

    result = workspace.materialize(selection=RAW_AND_CLEAN, partition=drops.UNNAMED)

    assert not result.success
    evaluation = check_results(result)[f"{kind}_contract"]
    message = evaluation.description or ""
    assert not evaluation.passed and message.startswith(f"{name}: has no rows"), message
    assert f"drop {drops.UNNAMED} is stored with" in message, message
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert not {f"raw_{kind}", f"clean_{kind}", f"quarantined_{kind}"} & materialized, materialized
    assert not any(asset.startswith(("clean_", "quarantined_")) for asset in materialized), materialized
    assert digest(_stored(workspace.root)) == stored_before


def _tiny_drop(rows: int) -> list[dict]:
    """``rows`` transactions of a known customer, half of them bad (the first: dated 2099, after the drop arrived;
    the others alternate with a decimal-comma amount)."""
    records = [tx(f"TINY{rows}-{i}") for i in range(rows)]
    for i in range(0, rows, 2):
        bad = {"timestamp": "2099-01-01T00:00:00Z"} if i % 4 == 0 else {"amount": "12,50"}
        records[i].update(bad)
    return records


@pytest.mark.parametrize("rows", [1, 2, 10])
def test_a_tiny_drop_is_quarantined_not_refused(rows: int, base: Workspace, tmp_path: Path) -> None:
    """A drop of a few rows, half of them bad: the share over so few rows is no evidence of a broken export
    (below HVBUYER_QUARANTINE_MIN_ROWS the share rule warns), so the bad rows are quarantined like any others."""
    workspace = base.copy_to(tmp_path / "data")
    name = f"transactions_tiny{rows}.jsonl"
    records = _tiny_drop(rows)
    (workspace.raw / name).write_text("".join(json.dumps(r) + "\n" for r in records))
    arrive([workspace.raw / name], BASE_AS_OF)
    drop = _complete(workspace.raw, name)

    result = workspace.materialize(selection=RAW_AND_CLEAN)

    failures = [e.event_specific_data.error.to_string() for e in result.all_events if e.is_step_failure]
    assert result.success, failures
    share = check_results(result)["transaction_quarantine_share"]
    assert not share.passed and share.severity == dg.AssetCheckSeverity.WARN, share.description
    assert "fewer than 100 rows" in (share.description or ""), share.description
    bad = {r["transaction_id"] for i, r in enumerate(records) if i % 2 == 0}
    quarantine = read_frame(workspace.root / "quarantine" / "quarantined_transactions" / f"{drop}.parquet")
    assert set(quarantine["record_id"].astype(str)) == bad
    reasons = quarantine.set_index(quarantine["record_id"].astype(str))["reason"].astype(str)
    assert "after the drop arrived" in reasons[f"TINY{rows}-0"], reasons
    clean = read_frame(workspace.root / "processed" / "clean_transactions" / f"{drop}.parquet")
    assert set(clean["transaction_id"].astype(str)) == {r["transaction_id"] for r in records} - bad


def test_a_wholly_bad_drop_names_its_file_and_reasons(base: Workspace, tmp_path: Path) -> None:
    """300 transactions, every amount with a decimal comma: refused, and since a refused drop stores no quarantine,
    the failure names the file and the most common reasons with their counts (description and metadata)."""
    workspace = base.copy_to(tmp_path / "data")
    name = "transactions_commas.jsonl"
    records = [tx(f"COMMA{i}", amount="12,50") for i in range(300)]
    (workspace.raw / name).write_text("".join(json.dumps(r) + "\n" for r in records))
    arrive([workspace.raw / name], BASE_AS_OF)
    _complete(workspace.raw, name)
    stored_before = digest(_stored(workspace.root))

    result = workspace.materialize(selection=RAW_AND_CLEAN)

    assert not result.success
    share = check_results(result)["transaction_quarantine_share"]
    message = share.description or ""
    assert not share.passed and share.severity == dg.AssetCheckSeverity.ERROR, message
    assert f"{name}: 300 x amount … is not a number (e.g. amount '12,50' is not a number)" in message, message
    assert share.metadata["common_reasons"].value == [
        {"file": name, "reason": "amount … is not a number", "rows": 300, "example": "amount '12,50' is not a number"}
    ]
    assert {k: v for k, v in digest(_stored(workspace.root)).items() if k in stored_before} == stored_before
