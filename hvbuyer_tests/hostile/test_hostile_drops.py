"""Every case of the hostile corpus (``corpus.py``) through the real graph: the raw and cleaning assets with their
blocking checks, materialized by Dagster on a workspace that already holds an accepted drop.

A refused case fails its contract check with a message naming the file and the problem, materializes nothing and
replaces no stored file (interim, processed, quarantine); an accepted case succeeds with its odd values
quarantined with reasons and nothing guessed in the clean tables."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from hvbuyer_assets.core import drops
from hvbuyer_tests.hostile.corpus import CASES, Accepted, Case, Refused, write_case
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
