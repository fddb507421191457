"""The small shared rules: importable without the cleaning kernels, and the single definition cleaning uses."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd

from hvbuyer_assets.core import rules
from hvbuyer_assets.core.cleaning import clean_customers, clean_transactions

S = pd.StringDtype("pyarrow")
ARRIVED = pd.Timestamp("2024-06-01T00:00:00Z")


def _modules_after_import(*modules: str) -> list[str]:
    """The hvbuyer modules a fresh interpreter holds after importing ``modules``."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('hvbuyer'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def test_rules_features_and_serving_inputs_do_not_import_the_cleaning_kernels() -> None:
    loaded = _modules_after_import("hvbuyer_assets.core.rules")
    assert "hvbuyer_assets.core.rules" in loaded
    assert not [m for m in loaded if m.startswith("hvbuyer_assets.core.cleaning")], loaded
    assert "hvbuyer_assets.core.contract" not in loaded  # nor the raw-file readers
    loaded = _modules_after_import("hvbuyer_assets.core.features", "hvbuyer_serving.inputs")
    assert "hvbuyer_assets.core.rules" in loaded
    assert not [m for m in loaded if m.startswith("hvbuyer_assets.core.cleaning")], loaded


def test_cleaning_applies_the_shared_age_bounds_and_region_rule() -> None:
    ages = [rules.AGE_MIN - 1, rules.AGE_MIN, rules.AGE_MAX, rules.AGE_MAX + 1]
    raw = pd.DataFrame(
        {
            "customer_id": pd.array([f"C{i}" for i in range(4)], dtype=S),
            "age": pd.array([str(a) for a in ages], dtype=S),
            "region": pd.array([" north  east", None, "N/A", "WEST"], dtype=S),
            "signup_date": pd.array(["2020-01-01"] * 4, dtype=S),
            "loyalty_points": pd.array(["1"] * 4, dtype=S),
            "source_file": pd.array(["c.csv"] * 4, dtype=S),
            "source_row": np.arange(1, 5, dtype=np.int64),
            "arrived_at": [ARRIVED] * 4,
        }
    )
    clean = clean_customers(raw).clean
    assert clean["age"].isna().tolist() == [True, False, False, True]
    assert clean["region"].tolist() == ["North East", rules.UNKNOWN_REGION, rules.UNKNOWN_REGION, "West"]
    assert clean["region"].tolist() == [rules.normalise_region_value(v) for v in raw["region"].astype(object)]


def test_cleaning_keeps_exactly_the_shared_statuses() -> None:
    statuses = [*rules.TRANSACTION_STATUSES, "lost"]
    n = len(statuses)
    raw = pd.DataFrame(
        {
            "transaction_id": pd.array([f"T{i}" for i in range(n)], dtype=S),
            "customer_id": pd.array(["C1"] * n, dtype=S),
            "amount": pd.array(["5"] * n, dtype=S),
            "timestamp": pd.array(["2024-01-01T00:00:00Z"] * n, dtype=S),
            "payment_method": pd.array([None] * n, dtype=S),
            "status": pd.array([s.upper() for s in statuses], dtype=S),
            "source_file": pd.array(["t.json"] * n, dtype=S),
            "source_row": np.arange(1, n + 1, dtype=np.int64),
            "arrived_at": [ARRIVED] * n,
        }
    )
    result = clean_transactions(raw, pd.Series(["C1"], dtype=S))
    assert result.clean["status"].tolist() == list(rules.TRANSACTION_STATUSES)
    assert (result.clean["payment_method"] == rules.UNKNOWN_PAYMENT_METHOD).all()
    assert result.quarantine["value"].tolist() == ["LOST"]
