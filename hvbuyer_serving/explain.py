"""``?explain=K``: the K features that pushed a customer's probability up or down most, with their exact TreeSHAP
contributions (``core.treeshap`` on the served champion's forest), for ``/predict``, ``/predict/batch`` and
``/customers/{id}/prediction``."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hvbuyer_assets.core.features import FEATURE_NUMERIC
from hvbuyer_assets.core.treeshap import ForestExplainer
from hvbuyer_serving import inputs

MAX_EXPLAIN_ROWS = 1_000  # a batch explained row by row: ~1.7 ms of CPU a row (docs/api.md)
FEATURE_COUNT = len(FEATURE_NUMERIC) + 1  # the numerics and region


class ExplainRefused(ValueError):
    """``?explain=`` cannot be answered: the 422 issue."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.issue = {"loc": ["query", "explain"], "msg": msg, "type": "value_error"}


def requested(raw: str | None, rows: int = 1) -> int | None:
    """K of ``?explain=K`` (None when not asked); ExplainRefused for anything but 1..features, or too many rows."""
    if raw is None:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= FEATURE_COUNT:
        raise ExplainRefused(f"explain must be a whole number of features from 1 to {FEATURE_COUNT}, got {raw!r}")
    if rows > MAX_EXPLAIN_ROWS:
        raise ExplainRefused(f"explain answers batches of up to {MAX_EXPLAIN_ROWS:,} rows, got {rows:,}")
    return int(raw)


def explainer_of(served: Any) -> ForestExplainer:
    """The served model's explainer; ExplainRefused when it is not a forest."""
    if served.explainer is None:
        raise ExplainRefused(f"model version {served.version} is not a random forest: no TreeSHAP explanation")
    return served.explainer


def _plain(value: Any) -> float | str | None:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def explain(explainer: ForestExplainer, numeric: np.ndarray, region: Sequence[str], k: int) -> list[dict[str, Any]]:
    """Explanations of rows given as the explainer's numerics (its column order, NaN = missing) and regions."""
    found = explainer.explain(numeric, region)
    out = []
    for row, picks in enumerate(found.top(k)):
        values = dict(zip(explainer.numeric, numeric[row].tolist(), strict=True)) | {"region": region[row]}
        shown = sum(pick["contribution"] for pick in picks)
        out.append(
            {
                "expected_value": found.expected_value,
                "forest_probability": float(found.probability[row]),
                "top": [{**pick, "value": _plain(values[pick["feature"]])} for pick in picks],
                "others": float(found.contributions[row].sum() - shown),
            }
        )
    return out


def stored_reasons(pipeline: Any, customer_features: Any, k: int) -> list[str]:
    """Each customer's explanation (top ``k``) as JSON, from the batch features the scoring used (as
    ``model.predict_proba`` reads them: raw values, missing region "Unknown")."""
    explainer = ForestExplainer(pipeline)
    numeric = customer_features[list(explainer.numeric)].to_numpy(dtype=np.float64, na_value=np.nan)
    region = customer_features["region"].astype(object).where(customer_features["region"].notna(), "Unknown")
    return [json.dumps(one) for one in explain(explainer, numeric, [str(r) for r in region], k)]


def explain_served(served: Any, matrix: np.ndarray, region: Sequence[str], k: int) -> list[dict[str, Any]]:
    """Explanations of serving matrix rows (``inputs.NUMERIC`` order, the serving rules applied)."""
    explainer = explainer_of(served)
    numeric = matrix[:, [inputs.POSITION[name] for name in explainer.numeric]]
    return explain(explainer, numeric, region, k)


def explain_record(served: Any, record: dict[str, Any], k: int) -> dict[str, Any]:
    """The explanation of an online-store record: its stored reasons when they hold K, else computed from its
    features when the served champion scored it; ExplainRefused otherwise."""
    stored = record.get("reasons")
    if stored and len(stored["top"]) >= k:
        dropped = sum(reason["contribution"] for reason in stored["top"][k:])
        return {**stored, "top": stored["top"][:k], "others": stored["others"] + dropped}
    if served is None or served.version != record.get("model_version"):
        serving = "no model" if served is None else f"version {served.version}"
        raise ExplainRefused(
            f"this score is from model version {record.get('model_version')} and {serving} is served now: "
            f"re-score (customer_scores) or POST its features to /predict?explain={k}"
        )
    explainer = explainer_of(served)
    features = record["features"]
    numeric = np.array([[np.nan if features.get(n) is None else features[n] for n in explainer.numeric]])
    return explain(explainer, numeric, [features.get("region") or "Unknown"], k)[0]
