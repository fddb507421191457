"""The model's feature columns, declared once.

Each ``Feature`` says what a column is (numeric or categorical, demographic or behaviour), what a customer
without purchase history has in it, what an API request may send (bounds; ``required`` fields), how a sent
value is cleaned (``unknown_outside`` / ``floor``, the cleaning rules of the customer record), and whether its
distribution grows with time by construction (``time_indexed``: drift reports it but it does not vote).

Everything else is derived from ``FEATURES``: the column tuples of ``core.features``, the API's request model
(``hvbuyer_serving.schemas``), the serving rules (``SERVING_RULES``, used by ``features.serving_frame`` and the
API's DataFrame-free path alike) and the drift voting split. Adding a feature column = one entry here plus its
computation in ``feature_defs.features`` (the one narwhals declaration every engine runs).

The trailing windows are data: ``WINDOWS`` declares each one (its length, whether it has a count and/or a spend
feature). Their ``FEATURES`` entries and ``feature_defs``' window sums are derived from it, so a new window
(say ``Window(180, count=False)``: ``spend_180d``) is one entry there and nothing else: training, scoring, the
per-drop state and the API follow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from hvbuyer_assets.core.rules import AGE_MAX, AGE_MIN

NAN = math.nan


@dataclass(frozen=True)
class Feature:
    """One feature column.

    no_history: the value of a customer without transactions (behaviour features; NaN = unknown), also what an
    API request omitting the field gets. None for demographics (omitted = unknown).
    ge / le / max_length: bounds of a value an API request may send (None = unbounded).
    required: an API request must carry the field (null is allowed and means "unknown").
    unknown_outside: (low, high): a sent value outside becomes unknown (NaN), as cleaning does for the record.
    floor: a sent value below it is raised to it (as the pipeline floors it).
    time_indexed: its distribution moves with the length of the observed history for every customer alike
    (all-time counts, sums and ratios, ages measured from a fixed past date): drift reports it, it does not vote.
    """

    name: str
    description: str
    kind: Literal["numeric", "categorical"] = "numeric"
    group: Literal["demographic", "behaviour"] = "behaviour"
    no_history: float | None = 0.0
    ge: float | None = 0
    le: float | None = None
    max_length: int | None = None
    required: bool = False
    unknown_outside: tuple[float, float] | None = None
    floor: float | None = None
    time_indexed: bool = False


def _demographic(name: str, description: str, **kwargs: object) -> Feature:
    return Feature(name, description, group="demographic", no_history=None, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Window:
    """A trailing window ``(t - days, t]`` of completed purchases: ``count`` declares its ``n_completed_<days>d``
    feature, ``spend`` its ``spend_<days>d`` feature (an exact micro-unit sum)."""

    days: int
    count: bool = True
    spend: bool = True

    @property
    def count_name(self) -> str:
        return f"n_completed_{self.days}d"

    @property
    def spend_name(self) -> str:
        return f"spend_{self.days}d"


# The trailing windows, in the API's field order (a new window: one entry here).
WINDOWS: tuple[Window, ...] = (Window(30, spend=False), Window(90), Window(365))
COUNT_WINDOWS: tuple[Window, ...] = tuple(w for w in WINDOWS if w.count)
SPEND_WINDOWS: tuple[Window, ...] = tuple(w for w in WINDOWS if w.spend)
LONGEST_WINDOW_DAYS: int = max(w.days for w in WINDOWS)


def _window_features(kind: Literal["count", "spend"]) -> tuple[Feature, ...]:
    if kind == "count":
        return tuple(Feature(w.count_name, f"Completed purchases in the last {w.days} days.") for w in COUNT_WINDOWS)
    return tuple(
        Feature(w.spend_name, f"Sum of completed purchase amounts in the last {w.days} days.") for w in SPEND_WINDOWS
    )


# In the API's field order; FEATURE_COLUMNS (the model's input order) is numerics then categoricals.
FEATURES: tuple[Feature, ...] = (
    _demographic("age", "Age in years.", le=120, required=True, unknown_outside=(float(AGE_MIN), float(AGE_MAX))),
    _demographic(
        "region",
        "Region; case and spaces are normalised.",
        kind="categorical",
        ge=None,
        max_length=64,
        required=True,
    ),
    _demographic("loyalty_points", "Current loyalty points balance.", required=True, unknown_outside=(0.0, math.inf)),
    _demographic("tenure_days", "Days since signup.", floor=0.0, time_indexed=True),
    Feature("n_transactions", "Transactions of any status.", time_indexed=True),
    Feature("n_completed", "Completed purchases.", time_indexed=True),
    *_window_features("count"),
    Feature("total_spend", "Sum of completed purchase amounts.", time_indexed=True),
    *_window_features("spend"),
    Feature("avg_spend", "Mean completed purchase amount (0 without purchases).", time_indexed=True),
    Feature("max_spend", "Largest completed purchase amount (0 without purchases).", time_indexed=True),
    Feature("last_amount", "Amount of the latest completed purchase (0 without purchases)."),
    Feature("n_large", "Completed purchases of at least the large-purchase threshold.", time_indexed=True),
    Feature("share_large", "n_large / n_completed (0 without purchases).", le=1, time_indexed=True),
    Feature("days_since_last_purchase", "Days since the latest completed purchase (unknown without).", no_history=NAN),
    Feature(
        "days_since_first_purchase",
        "Days since the earliest completed purchase (unknown without).",
        no_history=NAN,
        time_indexed=True,
    ),
    Feature("refund_rate", "Refunded / (completed + pending + refunded) transactions.", le=1, time_indexed=True),
    Feature("n_failed", "Failed transactions.", time_indexed=True),
)

BY_NAME: Mapping[str, Feature] = {f.name: f for f in FEATURES}
FEATURE_NUMERIC: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == "numeric")
FEATURE_CATEGORICAL: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == "categorical")
FEATURE_COLUMNS: tuple[str, ...] = FEATURE_NUMERIC + FEATURE_CATEGORICAL
DEMOGRAPHIC_FEATURES: tuple[str, ...] = tuple(n for n in FEATURE_NUMERIC if BY_NAME[n].group == "demographic")
BEHAVIOUR_FEATURES: tuple[str, ...] = tuple(n for n in FEATURE_NUMERIC if BY_NAME[n].group == "behaviour")
NO_HISTORY: Mapping[str, float] = {n: float(BY_NAME[n].no_history) for n in BEHAVIOUR_FEATURES}  # type: ignore[arg-type]
TIME_INDEXED_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.time_indexed)
REQUIRED_FIELDS: tuple[str, ...] = tuple(f.name for f in FEATURES if f.required)


def _known(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


@dataclass(frozen=True)
class ServingRules:
    """The declaration's rules for sent values, over the positions of ``FEATURE_NUMERIC`` (NaN / None = not
    sent): an omitted behaviour field takes its no-history value, a value outside ``unknown_outside`` becomes
    unknown, a value below ``floor`` is raised to it. ``matrix`` and ``row`` apply the same rules (numpy for
    many rows, plain Python for one: a dozen numpy calls cost more than the model)."""

    fill: tuple[tuple[int, float], ...]
    unknown_outside: tuple[tuple[int, float, float], ...]
    floor: tuple[tuple[int, float], ...]

    @classmethod
    def of(cls, numeric: tuple[str, ...]) -> ServingRules:
        """The rules of the numeric features ``numeric`` (in that column order)."""
        spec = [BY_NAME[name] for name in numeric]
        return cls(
            fill=tuple((i, f.no_history) for i, f in enumerate(spec) if _known(f.no_history)),
            unknown_outside=tuple((i, *f.unknown_outside) for i, f in enumerate(spec) if f.unknown_outside),
            floor=tuple((i, f.floor) for i, f in enumerate(spec) if f.floor is not None),
        )

    def matrix(self, matrix: np.ndarray) -> np.ndarray:
        """The rules on a (rows x features) float64 matrix, in place (NaN = not sent); returns it."""
        for i, fill in self.fill:
            column = matrix[:, i]
            column[np.isnan(column)] = fill
        with np.errstate(invalid="ignore"):
            for i, low, high in self.unknown_outside:
                column = matrix[:, i]
                column[(column < low) | (column > high)] = np.nan
            for i, floor in self.floor:
                column = matrix[:, i]
                column[column < floor] = floor
        return matrix

    def row(self, values: list[float | None]) -> list[float | None]:
        """The rules on one row of Python numbers (None = not sent), in place; returns it."""
        for i, fill in self.fill:
            if values[i] is None:
                values[i] = fill
        for i, low, high in self.unknown_outside:
            value = values[i]
            if value is not None and not low <= value <= high:
                values[i] = None
        for i, floor in self.floor:
            value = values[i]
            if value is not None and value < floor:
                values[i] = floor
        return values


SERVING_RULES = ServingRules.of(FEATURE_NUMERIC)
