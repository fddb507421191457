"""The graph builds on any contract-following raw folder, not only the generator's output: here a hand-made
export with its own quirks (JSON array instead of JSON Lines, numeric and "$1,234.50" amounts mixed, extra and
reordered columns, numeric-looking ids, three drops: two customers-only drops and a transactions-only export, each
completed by its _SUCCESS marker and cleaned in its own partition; the export's customers are known from the earlier
drops)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hvbuyer_tests.pipeline import Workspace, check_results, read_frame

pytestmark = pytest.mark.slow  # builds the graph itself (see the slow marker in pyproject.toml)

AS_OF = pd.Timestamp("2025-03-31T12:00:00Z")


def _export(raw: Path, n: int = 1500, seed: int = 3) -> None:
    rng = np.random.default_rng(seed)
    ids = np.arange(100_000, 100_000 + n).astype(str)
    customers = pd.DataFrame(
        {
            "loyalty_points": rng.integers(0, 4000, n),
            "customer_id": ids,
            "region": rng.choice(["north", "SOUTH", " East", "west "], n),
            "signup_date": (AS_OF - pd.to_timedelta(rng.integers(400, 1500, n), unit="D")).strftime("%Y-%m-%d"),
            "age": rng.integers(18, 80, n),
            "email_opt_in": rng.integers(0, 2, n),  # extra column: ignored
        }
    )
    raw.mkdir(parents=True)
    customers.iloc[: n // 2].to_csv(raw / "customers_2025-01.csv", index=False)
    customers.iloc[n // 2 :].to_csv(raw / "customers_2025-03.csv", index=False)

    spend_level = rng.lognormal(4.5, 0.8, n)  # a persistent per-customer spend level: history predicts the future
    counts = rng.poisson(rng.gamma(2.0, 4.0, n))
    owner = np.repeat(np.arange(n), counts)
    amounts = np.round(spend_level[owner] * rng.lognormal(0, 0.5, owner.size), 2)
    seconds = rng.integers(0, 420 * 86400, owner.size)
    stamps = (AS_OF - pd.to_timedelta(seconds, unit="s")).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    records = []
    for i in range(owner.size):  # building a small test fixture, not pipeline code
        amount: object = float(amounts[i]) if i % 3 else f"${amounts[i]:,.2f}"
        records.append(
            {
                "id_source": "pos",
                "transaction_id": f"X{i}",
                "customer_id": int(ids[owner[i]]),
                "amount": amount,
                "timestamp": stamps[i],
                "payment_method": "Card",
                "status": "completed" if i % 10 else "refunded",
            }
        )
    (raw / "transactions_export.json").write_text(json.dumps(records))
    for drop in ("2025-01", "2025-03", "export"):  # one-kind drops: the writer's marker completes each
        (raw / f"_SUCCESS_{drop}").write_bytes(b"")


def test_hand_made_export_builds_end_to_end(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "data")
    _export(workspace.raw)
    result = workspace.materialize()
    assert result.success, {n: e.description for n, e in check_results(result).items() if not e.passed}
    assert workspace.champion_version() == "1"
    scores = read_frame(workspace.root / "scores" / "customer_scores.parquet")
    assert len(scores) == 1500 and scores["customer_id"].str.startswith("1").all()
    assert scores["large_purchase_probability"].between(0, 1).all()
    feats = read_frame(workspace.root / "features" / "customer_features.parquet")
    assert set(feats["region"]) == {"North", "South", "East", "West"}
