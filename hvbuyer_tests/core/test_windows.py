"""Windows are data (``feature_spec.WINDOWS``): a 180-day spend window added by that one declaration, and nothing
else, reaches training, scoring and the API. The package is copied, the declaration's line is edited, and a
fresh process imports the copy (every derived tuple is computed at import, as in production)."""

from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from hvbuyer_assets.core import feature_defs, feature_spec

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("hvbuyer_assets", "hvbuyer_serving")
DECLARATION = "WINDOWS: tuple[Window, ...] = (Window(30, spend=False), Window(90), Window(365))"
WITH_180 = "WINDOWS: tuple[Window, ...] = (Window(30, spend=False), Window(90), Window(180, count=False), Window(365))"

# Runs in the copy. Customer "x" buys 100 at T - 150 d (inside 180 d, outside 90 d) and 1,000 at T - 200 d
# (outside 180 d, inside 365 d); the others are random, so the model has something to learn from.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import numpy as np, pandas as pd
    import hvbuyer_assets, hvbuyer_serving
    assert Path(hvbuyer_assets.__file__).parents[1] == Path.cwd(), hvbuyer_assets.__file__
    assert Path(hvbuyer_serving.__file__).parents[1] == Path.cwd(), hvbuyer_serving.__file__
    from hvbuyer_assets.core import customer_state, engine, features, model, training
    from hvbuyer_serving import inputs, model_store
    from hvbuyer_serving.schemas import PredictRequest

    as_of = pd.Timestamp("2025-01-31T00:00:00Z")
    day = pd.Timedelta(days=1)
    rng = np.random.default_rng(0)
    ids = [f"C{i:03d}" for i in range(300)] + ["x"]
    n = 20_000
    tx = pd.DataFrame({
        "customer_id": pd.array(list(rng.choice(ids[:-1], n)) + ["x", "x"], dtype="string[pyarrow]"),
        "amount": np.append(rng.gamma(2.0, 80.0, n), [100.0, 1000.0]),
        "timestamp": pd.to_datetime(
            list(as_of - pd.to_timedelta(rng.integers(0, 800 * 86_400, n), unit="s"))
            + [as_of - 150 * day, as_of - 200 * day], utc=True),
        "status": pd.array(list(rng.choice(["completed"] * 6 + ["refunded"], n)) + ["completed"] * 2,
                           dtype="string[pyarrow]"),
    })
    customers = pd.DataFrame({
        "customer_id": pd.array(ids, dtype="string[pyarrow]"),
        "age": rng.integers(18, 80, len(ids)).astype(float),
        "region": pd.array(rng.choice(["east", "west"], len(ids)), dtype="string[pyarrow]"),
        "signup_date": as_of - pd.to_timedelta(rng.integers(100, 1500, len(ids)), unit="D"),
        "loyalty_points": rng.integers(0, 2000, len(ids)).astype(float),
    })
    out = {"numeric": list(features.FEATURE_NUMERIC)}

    # scoring's input: the features as of T, from scratch and from two drops' states (customer_features' way)
    feats = features.build_features(tx, customers, as_of)
    out["x"] = {k: float(feats.loc["x", k]) for k in ("spend_90d", "spend_180d", "spend_365d")}
    early = (tx["timestamp"] < as_of - 100 * day).to_numpy()
    states = [customer_state.drop_state(engine.keyed_transactions(part), 300.0) for part in (tx[early], tx[~early])]
    total = engine.keyed_state(engine.collect_keyed(customer_state.combine(states)))
    from_state = features.state_features_frame(
        total, engine.keyed_transactions(tx), engine.keyed_customers(customers), engine.collect_keyed, as_of)
    out["state_equals_scratch"] = bool(from_state.equals(feats)) and "spend_180d" in from_state

    # training: the training set and the fitted model carry it
    train = training.build_training_set(tx, customers, as_of, train_snapshots=2)
    out["training_columns"] = list(train.columns)
    pipeline = model.train_model(train, model.ModelParams(n_estimators=10, n_jobs=1))
    out["model_inputs"] = list(model.input_columns(pipeline))
    out["scores"] = len(model.predict_proba(pipeline, feats))

    # the API: the request schema, the fast JSON path and the served model (ONNX) use it
    out["api_fields"] = list(PredictRequest.model_json_schema()["properties"])
    session = model.onnx_session(model.to_onnx(pipeline))
    served = model_store.ServedModel(
        version="1", runtime="onnx", runtime_note="", columns=model.input_columns(pipeline),
        regions=frozenset(model.known_categories(pipeline)), pipeline=pipeline, session=session)
    model_store.verify(served)
    body = {"rows": [{"age": 40, "region": "east", "loyalty_points": 10, "spend_180d": s} for s in (0.0, 5000.0)]}
    matrix, regions = inputs.fast_batch(json.dumps(body).encode(), 10)
    out["sent_180d"] = matrix[:, inputs.POSITION["spend_180d"]].tolist()
    out["api_probabilities"] = served.predict(matrix, regions).tolist()
    out["request_ok"] = PredictRequest(**body["rows"][1]).spend_180d
    print(json.dumps(out))
    """
)


def _copy_with_180_day_window(root: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    spec = root / "hvbuyer_assets" / "core" / "feature_spec.py"
    text = spec.read_text()
    assert text.count(DECLARATION) == 1, "the WINDOWS declaration moved: update this test's DECLARATION"
    spec.write_text(text.replace(DECLARATION, WITH_180))


def _changed_files(left: Path, right: Path) -> list[str]:
    compared = filecmp.dircmp(left, right, ignore=["__pycache__"])
    changed = [str(right / name) for name in compared.diff_files + compared.left_only + compared.right_only]
    return changed + [f for sub in compared.common_dirs for f in _changed_files(left / sub, right / sub)]


def test_the_windows_in_use_are_the_declared_ones() -> None:
    declared = {w.days for w in feature_spec.WINDOWS}
    assert feature_spec.LONGEST_WINDOW_DAYS == max(declared) == 365
    assert feature_defs.WINDOW_COUNTS == ("n_completed_30d", "n_completed_90d", "n_completed_365d")
    assert tuple(feature_defs.WINDOW_SPEND_MICRO) == ("spend_90d", "spend_365d")


def test_a_180_day_spend_window_is_one_declaration(tmp_path: Path) -> None:
    _copy_with_180_day_window(tmp_path)
    changed = [
        Path(f).relative_to(tmp_path).as_posix() for p in PACKAGES for f in _changed_files(REPO / p, tmp_path / p)
    ]
    assert changed == ["hvbuyer_assets/core/feature_spec.py"]  # the one file touched

    run = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])

    numeric = out["numeric"]
    assert numeric.index("spend_90d") < numeric.index("spend_180d") < numeric.index("spend_365d")
    assert "n_completed_180d" not in numeric  # count=False: a spend window only
    assert out["x"] == {"spend_90d": 0.0, "spend_180d": 100.0, "spend_365d": 1100.0}
    assert out["state_equals_scratch"]
    assert "spend_180d" in out["training_columns"] and "spend_180d" in out["model_inputs"]
    assert out["scores"] == 301
    assert "spend_180d" in out["api_fields"]
    assert out["sent_180d"] == [0.0, 5000.0] and out["request_ok"] == 5000.0
    assert all(0.0 <= p <= 1.0 for p in out["api_probabilities"])
