"""Identities of the current features and of a training: equal inputs, equal fingerprint; any change, a new one."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hvbuyer_assets.core import features, fingerprints


def _features() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({name: rng.random(20) for name in features.FEATURE_NUMERIC})
    frame["region"] = pd.array(["North", "South"] * 10, dtype=features.STRING)
    frame.index = pd.Index([f"C{i}" for i in range(20)], dtype=features.STRING, name="customer_id")
    frame["feature_as_of"] = pd.Timestamp("2026-09-28", tz="UTC")
    frame["last_event_at"] = pd.Timestamp("2026-09-01", tz="UTC")
    return frame


def test_data_fingerprint_covers_customers_inputs_and_as_of_only() -> None:
    base = _features()
    fingerprint = fingerprints.data_fingerprint(base)
    assert len(fingerprint) == 16 and fingerprints.data_fingerprint(base.copy()) == fingerprint
    untouched = base.assign(last_event_at=pd.Timestamp("2026-09-02", tz="UTC"))  # not a model input
    assert fingerprints.data_fingerprint(untouched) == fingerprint
    changed = base.copy()
    changed.iloc[0, changed.columns.get_loc("age")] += 1
    later = base.assign(feature_as_of=pd.Timestamp("2026-09-29", tz="UTC"))
    renamed = base.rename(index={"C0": "C99"})
    for other in (changed, later, renamed):
        assert fingerprints.data_fingerprint(other) != fingerprint


def test_training_fingerprint_covers_rows_and_parameters_not_the_index() -> None:
    rows = _features().reset_index()
    params = {"n_estimators": 100, "max_depth": 12, "random_state": 42}
    fingerprint = fingerprints.training_fingerprint(rows, params)
    assert len(fingerprint) == 32
    assert fingerprints.training_fingerprint(rows.set_axis(range(100, 120)), dict(reversed(params.items()))) == (
        fingerprint
    )
    assert fingerprints.training_fingerprint(rows, {**params, "max_depth": 11}) != fingerprint
    assert fingerprints.training_fingerprint(rows.iloc[1:], params) != fingerprint
