"""Data and prediction drift between a reference frame (the champion's training features) and a current one.

Per feature (all statistics from scipy where scipy has them):

- numeric: two-sample Kolmogorov-Smirnov statistic and p-value (``scipy.stats.ks_2samp``, two-sided,
  ``method="auto"``) on the non-missing values, and PSI on reference-quantile bins (:func:`numeric_bins`):
  ``bins`` (10) bins cut at the reference quantiles ``k / bins`` (``inverted_cdf``, i.e. observed values),
  de-duplicated so that a value with a large mass (e.g. many zeros) gets one bin, right-closed
  ``(e_i, e_{i+1}]``, the outer bins open-ended (``-inf``/``+inf``), so current values outside the
  reference range still land in a bin. Missing values (NaN, +-inf) get a bin of their own, so a jump in the
  missing share counts towards PSI; KS ignores them.
- categorical: chi-square test of homogeneity on the 2 x k table of counts (``scipy.stats.chi2_contingency``,
  ``correction=False``), PSI over categories and Jensen-Shannon distance
  (``scipy.spatial.distance.jensenshannon``, ``base=2``: 0 = same distribution, 1 = disjoint). Categories are
  the union of both sides: a category unseen in the reference gets its own bin, missing values another.
- prediction: the model score treated as a numeric feature.

PSI = sum over bins of ``(c - r) * ln(c / r)`` with ``r``, ``c`` the shares of all rows (missing bin
included) in the reference / current sample; a share of 0 is replaced by ``EPSILON`` (1e-4) so an empty bin
adds a large but finite term.

Decision (defaults in :class:`DriftThresholds`). p-values alone never decide: at the sample sizes here any
negligible difference is "significant", so every rule needs an effect size.

- A feature (or the score) has drifted when ``PSI >= psi`` (0.2), or when its test is significant
  (``p < alpha``, 0.01) *and* its effect is at least moderate: KS statistic ``>= ks_min_statistic`` (0.1,
  i.e. the two CDFs differ by 10 points somewhere) for numeric features, Jensen-Shannon distance
  ``>= js_min_distance`` (0.1) for categorical ones. The KS rule is only applied when both sides have at
  least ``min_rows`` non-missing values.
- The dataset has drifted when (1) the share of drifted features is ``>= drifted_share`` (0.5): a broad
  shift; or (2) the score has drifted: the model sees a different population, whatever the features say;
  or (3) any single feature has a major shift, ``PSI >= major_psi`` (0.25, the usual "significant shift"
  level of PSI): a shift in one strong feature (or in the population mix, e.g. regions) can change
  predictions without moving half of the features.
- Fewer than ``min_rows`` (500) rows on either side gives the verdict ``insufficient_data`` (never
  ``drift``); statistics are still reported, no feature is flagged.

The report is JSON-serialisable: plain float/int/str/bool/None (NaN and inf become None).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats
from scipy.spatial import distance

EPSILON = 1e-4  # share used in place of 0 for an empty PSI bin
MISSING = "<missing>"  # the category of missing categorical values
SCORE = "score"  # name of the prediction row in report_table


@dataclass(frozen=True)
class DriftThresholds:
    """Thresholds of the drift decision (see the module docstring)."""

    psi: float = 0.2  # a feature (or the score) has drifted when PSI >= psi (or the KS/JS rule below)
    drifted_share: float = 0.5  # dataset drift when the share of drifted features >= this
    min_rows: int = 500  # fewer rows than this on either side -> verdict "insufficient_data", never "drift"
    bins: int = 10  # numeric PSI bins = reference quantiles (deciles), open-ended outer bins
    alpha: float = 0.01  # significance level of the KS / chi-square tests
    ks_min_statistic: float = 0.1  # numeric drift also when KS statistic >= this and KS p < alpha
    js_min_distance: float = 0.1  # categorical drift also when JS distance >= this and chi-square p < alpha
    major_psi: float = 0.25  # dataset drift when any single feature has PSI >= this

    def __post_init__(self) -> None:
        if self.bins < 2:
            raise ValueError(f"DriftThresholds.bins must be >= 2, got {self.bins}")
        if self.min_rows < 1:
            raise ValueError(f"DriftThresholds.min_rows must be >= 1, got {self.min_rows}")
        for name in ("psi", "major_psi", "drifted_share", "alpha", "ks_min_statistic", "js_min_distance"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"DriftThresholds.{name} must be a finite number >= 0, got {value!r}")


def _float(value: Any) -> float | None:
    """A plain float, None for NaN/inf/None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def psi(reference_counts: Sequence[float] | np.ndarray, current_counts: Sequence[float] | np.ndarray) -> float:
    """Population stability index of two aligned count vectors (same bins, same order).

    ``sum((c - r) * ln(c / r))`` over bins, with ``r``/``c`` the shares of each side and shares of 0 replaced
    by ``EPSILON``. Raises ValueError on misaligned or negative counts, or an empty side.
    """
    ref = np.asarray(reference_counts, dtype="float64")
    cur = np.asarray(current_counts, dtype="float64")
    if ref.ndim != 1 or ref.shape != cur.shape:
        raise ValueError(f"psi: count vectors must be 1-D and aligned, got shapes {ref.shape} and {cur.shape}")
    if (ref < 0).any() or (cur < 0).any():
        raise ValueError("psi: counts must be >= 0")
    if ref.sum() <= 0 or cur.sum() <= 0:
        raise ValueError("psi: both count vectors need a positive total")
    r = np.maximum(ref / ref.sum(), EPSILON)
    c = np.maximum(cur / cur.sum(), EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def _valid(values: Any) -> tuple[np.ndarray, int]:
    """(the finite values as a new float64 array, number of rows). Non-numeric data raises ValueError."""
    if isinstance(values, pd.Series | pd.Index):
        arr = pd.to_numeric(values, errors="raise").to_numpy(dtype="float64", na_value=np.nan)
    else:
        arr = np.asarray(values, dtype="float64").ravel()
    return arr[np.isfinite(arr)], arr.size


def _edges_from_sorted(ref_sorted: np.ndarray, bins: int) -> np.ndarray:
    n = ref_sorted.size
    if n == 0:
        return np.array([-np.inf, np.inf])
    # inverted_cdf quantile k/bins = the ceil(k * n / bins)-th smallest value
    positions = -(-np.arange(1, bins, dtype=np.int64) * n // bins) - 1
    cuts = np.unique(ref_sorted[np.clip(positions, 0, n - 1)])
    return np.concatenate([[-np.inf], cuts, [np.inf]])


def numeric_bins(reference: Any, bins: int = 10) -> np.ndarray:
    """PSI bin edges: ``[-inf, q_1, ..., q_{bins-1}, +inf]`` with ``q_k`` the reference quantile ``k / bins``.

    Quantiles are ``np.quantile(..., method="inverted_cdf")`` of the finite reference values (observed
    values, no interpolation), de-duplicated; bins are right-closed ``(e_i, e_{i+1}]``. Missing values are
    not binned here (they get a separate bin in the PSI). An all-missing reference gives ``[-inf, inf]``.
    """
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    values, _ = _valid(reference)
    return _edges_from_sorted(np.sort(values), bins)


def _counts_sorted(sorted_values: np.ndarray, edges: np.ndarray, n_missing: int) -> np.ndarray:
    """Counts per right-closed bin of sorted values, the missing count appended."""
    upto = np.searchsorted(sorted_values, edges[1:-1], side="right")
    bounds = np.concatenate([[0], upto, [sorted_values.size]])
    return np.append(np.diff(bounds), n_missing).astype("float64")


# ks_2samp(method="auto") computes an exact p-value up to this sample size, the asymptotic one above it
KS_EXACT_MAX_N = 10_000


def _run_ends(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values, number of values <= each) of a sorted array."""
    ends = np.append(np.flatnonzero(sorted_values[1:] != sorted_values[:-1]) + 1, sorted_values.size)
    return sorted_values[ends - 1], ends


def ks_statistic_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided KS statistic of two sorted, non-empty, finite samples, bit-identical to ``ks_2samp``'s.

    Like scipy, the ECDF difference ``count_a(<= v) / n_a - count_b(<= v) / n_b`` is evaluated at every
    observed value ``v``, here once per distinct value (run ends of the sorted arrays), without re-sorting.
    """
    n1, n2 = a.size, b.size
    u1, c1 = _run_ends(a)
    u2, c2 = _run_ends(b)
    c1p, c2p = np.append(0, c1), np.append(0, c2)
    diff1 = c1 / n1 - c2p[np.searchsorted(u2, u1, side="right")] / n2
    diff2 = c1p[np.searchsorted(u1, u2, side="right")] / n1 - c2 / n2
    max_s = max(diff1.max(), diff2.max())
    min_s = min(max(-min(diff1.min(), diff2.min()), 0.0), 1.0)
    return float(min_s if min_s > max_s else max_s)


def _smirnov(n: float, x: float) -> float:
    """One-sided Smirnov survival function ``scipy.special.smirnov(n, x)``, vectorised.

    The exact Birnbaum-Tingey sum ``x * sum_v C(n, v) (x + v/n)^(v-1) (1 - x - v/n)^(n-v)`` over
    ``v = 0..floor(n (1 - x))``, in logs; scipy evaluates the same sum term by term (~1 s at n = 500 000),
    this takes ~50 ms and agrees to < 1e-10 (tested).
    """
    v = np.arange(0, math.floor(n * (1.0 - x)) + 1, dtype="float64")
    evn = x + v / n
    omevn = 1.0 - evn
    log_c = special.gammaln(n + 1.0) - special.gammaln(v + 1.0) - special.gammaln(n - v + 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_t = log_c + (v - 1) * np.log(evn) + np.where(omevn > 0, (n - v) * np.log(omevn), 0.0)
    log_t = np.where((omevn > 0) | (v == n), log_t, -np.inf)
    top = log_t.max()
    return float(x * np.exp(top) * np.sum(np.exp(log_t - top)))


def ks_pvalue_asymp(d: float, n1: int, n2: int) -> float:
    """``ks_2samp``'s asymptotic two-sided p-value: ``kstwo.sf(d, round(n1 n2 / (n1 + n2)))``, clipped to [0, 1].

    scipy's ``kstwo.sf`` uses ``2 * smirnov(n, d)`` when ``n > 140`` and ``2.2 <= n d^2 < 370`` (or ``d >= 0.5``);
    that branch is computed by the vectorised :func:`_smirnov`, every other one by scipy itself.
    """
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = float(np.round(m * n / (m + n)))
    t = en * d
    if en > 140 and 1.0 < t < en - 1 and (d >= 0.5 or 2.2 <= t * d < 370.0):
        prob = 2 * _smirnov(en, d)
    else:
        prob = float(stats.distributions.kstwo.sf(d, en))
    return float(np.clip(prob, 0.0, 1.0))


def ks_2samp_sorted(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of ``scipy.stats.ks_2samp(a, b)`` (two-sided, method "auto") for sorted samples.

    Up to ``KS_EXACT_MAX_N`` values per side scipy itself is called (exact p-value); above, the statistic and
    the asymptotic p-value are computed from the sorted arrays (:func:`ks_statistic_sorted`,
    :func:`ks_pvalue_asymp`): no second sort, and the slow Smirnov branch vectorised.
    """
    if max(a.size, b.size) <= KS_EXACT_MAX_N:
        result = stats.ks_2samp(a, b)
        return float(result.statistic), float(result.pvalue)
    d = ks_statistic_sorted(a, b)
    return d, ks_pvalue_asymp(d, a.size, b.size)


def _rows_ok(n_ref: int, n_cur: int, thresholds: DriftThresholds) -> bool:
    return n_ref >= thresholds.min_rows and n_cur >= thresholds.min_rows


def _numeric_stats(name: str, reference: Any, current: Any, thresholds: DriftThresholds) -> dict[str, Any]:
    ref, n_ref = _valid(reference)
    cur, n_cur = _valid(current)
    ref.sort()
    cur.sort()
    edges = _edges_from_sorted(ref, thresholds.bins)
    value: float | None = None
    if n_ref and n_cur:
        value = psi(_counts_sorted(ref, edges, n_ref - ref.size), _counts_sorted(cur, edges, n_cur - cur.size))
    ks_stat = ks_p = None
    if ref.size and cur.size:
        ks_stat, ks_p = (_float(v) for v in ks_2samp_sorted(ref, cur))
    out: dict[str, Any] = {
        "feature": name,
        "kind": "numeric",
        "psi": _float(value),
        "ks_statistic": ks_stat,
        "ks_pvalue": ks_p,
        "missing_share_reference": _float(1 - ref.size / n_ref) if n_ref else None,
        "missing_share_current": _float(1 - cur.size / n_cur) if n_cur else None,
        "rows_reference": n_ref,
        "rows_current": n_cur,
        "bins": int(edges.size - 1),
        "threshold": float(thresholds.psi),
    }
    ks_judged = min(ref.size, cur.size) >= thresholds.min_rows and ks_stat is not None
    effect = ks_judged and ks_p is not None and ks_p < thresholds.alpha and ks_stat >= thresholds.ks_min_statistic
    _judge(out, thresholds, effect, f"KS {_fmt(ks_stat)} (p={_fmt(ks_p)})", ks_judged, thresholds.ks_min_statistic)
    return out


def _categories(values: Any) -> tuple[pd.Series, int]:
    """(counts per category as str, number of rows)."""
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    counts = s.value_counts(dropna=True, sort=False)
    counts.index = counts.index.astype(str)
    counts = counts.groupby(level=0, sort=False).sum()  # categories equal as text are one category
    missing = int(len(s) - counts.sum())
    if missing:
        counts[MISSING] = counts.get(MISSING, 0) + missing
    return counts, len(s)


def _categorical_stats(name: str, reference: Any, current: Any, thresholds: DriftThresholds) -> dict[str, Any]:
    ref_counts, n_ref = _categories(reference)
    cur_counts, n_cur = _categories(current)
    categories = ref_counts.index.union(cur_counts.index)
    table = np.vstack(
        [
            ref_counts.reindex(categories, fill_value=0).to_numpy(dtype="float64"),
            cur_counts.reindex(categories, fill_value=0).to_numpy(dtype="float64"),
        ]
    )
    value = chi2 = chi2_p = js = None
    if n_ref and n_cur:
        value = psi(table[0], table[1])
        js = _float(distance.jensenshannon(table[0], table[1], base=2))
        if len(categories) >= 2:
            result = stats.chi2_contingency(table, correction=False)
            chi2, chi2_p = _float(result.statistic), _float(result.pvalue)
        else:  # a single category on both sides: identical distributions
            chi2, chi2_p, js = 0.0, 1.0, 0.0
    out: dict[str, Any] = {
        "feature": name,
        "kind": "categorical",
        "psi": _float(value),
        "chi2": chi2,
        "chi2_pvalue": chi2_p,
        "js_distance": js,
        "missing_share_reference": _float(ref_counts.get(MISSING, 0) / n_ref) if n_ref else None,
        "missing_share_current": _float(cur_counts.get(MISSING, 0) / n_cur) if n_cur else None,
        "rows_reference": n_ref,
        "rows_current": n_cur,
        "categories": int(len(categories)),
        "unseen_categories": sorted(str(c) for c in cur_counts.index.difference(ref_counts.index)),
        "threshold": float(thresholds.psi),
    }
    judged = js is not None and chi2_p is not None
    effect = judged and chi2_p < thresholds.alpha and js >= thresholds.js_min_distance
    _judge(out, thresholds, effect, f"JS {_fmt(js)} (chi2 p={_fmt(chi2_p)})", judged, thresholds.js_min_distance)
    return out


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


NOT_JUDGED = "not judged"


def _judge(
    out: dict[str, Any], thresholds: DriftThresholds, effect: bool, test: str, judged: bool, minimum: float
) -> None:
    value = out["psi"]
    if value is None:
        out["drifted"], out["reason"], out["flagged_by"] = False, "not judged: a side has no rows", NOT_JUDGED
        return
    by_psi = value >= thresholds.psi
    out["drifted"] = bool(by_psi or effect)
    test_name = test.split(" ", 1)[0]  # "KS" or "JS"
    out["flagged_by"] = "+".join([*(["PSI"] if by_psi else []), *([test_name] if effect else [])])
    if by_psi:
        out["reason"] = f"PSI {_fmt(value)} >= {thresholds.psi:g}"
    elif effect:
        out["reason"] = f"{test} >= {minimum:g} with p < {thresholds.alpha:g}"
    else:
        test_part = f"{test}: below {minimum:g} or p >= {thresholds.alpha:g}" if judged else f"{test}: not judged"
        out["reason"] = f"no shift: PSI {_fmt(value)} < {thresholds.psi:g}, {test_part}"


def _column(frame: pd.DataFrame, name: str, side: str) -> pd.Series:
    if name not in frame.columns:
        raise ValueError(f"drift_report: column {name!r} is missing from the {side} frame")
    return frame[name]


def _verdict(
    features: list[dict[str, Any]], prediction: dict[str, Any] | None, n_ref: int, n_cur: int, t: DriftThresholds
) -> tuple[str, str, list[str], float]:
    drifted = [f["feature"] for f in features if f["drifted"]]
    share = len(drifted) / len(features) if features else 0.0
    if not _rows_ok(n_ref, n_cur, t):
        return "insufficient_data", f"fewer than {t.min_rows} rows (reference {n_ref}, current {n_cur})", [], 0.0
    reasons = []
    if features and share >= t.drifted_share:
        reasons.append(f"{len(drifted)}/{len(features)} features drifted (share {share:.2f} >= {t.drifted_share:g})")
    if prediction is not None and prediction["drifted"]:
        reasons.append(f"score drifted ({prediction['reason']})")
    major = [f for f in features if f["psi"] is not None and f["psi"] >= t.major_psi]
    if major:
        reasons.append(
            "major shift in "
            + ", ".join(f"{f['feature']} (PSI {_fmt(f['psi'])})" for f in major)
            + f" >= {t.major_psi:g}"
        )
    if reasons:
        return "drift", "; ".join(reasons), drifted, share
    score = "" if prediction is None else f", score not drifted (PSI {_fmt(prediction['psi'])})"
    reason = (
        f"{len(drifted)}/{len(features)} features drifted (share {share:.2f} < {t.drifted_share:g}), "
        f"no feature PSI >= {t.major_psi:g}{score}"
    )
    return "no_drift", reason, drifted, share


def _workers(tasks: int) -> int:
    return max(1, min(tasks, os.cpu_count() or 1))


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    reference_scores: np.ndarray | None = None,
    current_scores: np.ndarray | None = None,
    thresholds: DriftThresholds = DriftThresholds(),
) -> dict[str, Any]:
    """Drift of ``current`` against ``reference`` over the given columns (and the scores when both are given).

    Returns a JSON-serialisable dict (plain floats/str/bool/None): ``verdict`` ("drift" | "no_drift" |
    "insufficient_data"), ``drift``, ``reason``, ``drifted_features``, ``drifted_share``, ``rows``,
    ``thresholds``, ``features`` (one dict per feature: statistics, ``threshold``, ``drifted``, ``flagged_by``:
    the tests that flagged it, ``PSI`` / ``KS`` / ``JS`` joined by ``+``, empty when none did, and ``reason``)
    and ``prediction`` (the score as a numeric feature, or None without scores on both sides).
    Raises ValueError naming a requested column that a frame lacks. Features are computed in threads.
    """
    overlap = set(numeric) & set(categorical)
    if overlap:
        raise ValueError(f"drift_report: columns listed as both numeric and categorical: {sorted(overlap)}")
    tasks: list[Callable[[], dict[str, Any]]] = []
    for name in numeric:
        ref, cur = _column(reference, name, "reference"), _column(current, name, "current")
        tasks.append(lambda name=name, ref=ref, cur=cur: _numeric_stats(name, ref, cur, thresholds))
    for name in categorical:
        ref, cur = _column(reference, name, "reference"), _column(current, name, "current")
        tasks.append(lambda name=name, ref=ref, cur=cur: _categorical_stats(name, ref, cur, thresholds))
    with_scores = reference_scores is not None and current_scores is not None
    if with_scores:
        tasks.append(lambda: _numeric_stats(SCORE, reference_scores, current_scores, thresholds))
    with warnings.catch_warnings():
        # ks_2samp falls back from its exact to its asymptotic p-value for some unequal sample sizes (the report
        # carries scipy's result either way); the fallback warning would repeat for every feature and drop
        warnings.filterwarnings("ignore", message="ks_2samp: Exact calculation unsuccessful", category=RuntimeWarning)
        if len(tasks) > 1 and _workers(len(tasks)) > 1:
            with ThreadPoolExecutor(max_workers=_workers(len(tasks))) as pool:
                results = list(pool.map(lambda task: task(), tasks))
        else:
            results = [task() for task in tasks]
    prediction = results.pop() if with_scores else None
    if prediction is not None:
        prediction["kind"] = "prediction"
    n_ref, n_cur = len(reference), len(current)
    if not _rows_ok(n_ref, n_cur, thresholds):
        for item in [*results, *([prediction] if prediction else [])]:
            item["drifted"], item["flagged_by"] = False, NOT_JUDGED
            item["reason"] = f"not judged: fewer than {thresholds.min_rows} rows"
    verdict, reason, drifted, share = _verdict(results, prediction, n_ref, n_cur, thresholds)
    return {
        "verdict": verdict,
        "drift": verdict == "drift",
        "reason": reason,
        "drifted_features": drifted,
        "drifted_share": float(share),
        "rows": {"reference": int(n_ref), "current": int(n_cur)},
        "thresholds": asdict(thresholds),
        "features": results,
        "prediction": prediction,
    }


TABLE_COLUMNS = (
    "feature",
    "kind",
    "psi",
    "ks_statistic",
    "ks_pvalue",
    "chi2",
    "chi2_pvalue",
    "js_distance",
    "missing_share_reference",
    "missing_share_current",
    "threshold",
    "drifted",
    "flagged_by",
    "reason",
)


def report_table(report: dict[str, Any]) -> pd.DataFrame:
    """One row per feature (plus a ``score`` row when the report has prediction drift), ``TABLE_COLUMNS``."""
    rows = list(report.get("features", []))
    if report.get("prediction") is not None:
        rows.append({**report["prediction"], "feature": SCORE})
    table = pd.DataFrame.from_records(rows, columns=list(TABLE_COLUMNS))
    return table.astype({"drifted": bool}) if len(table) else table
