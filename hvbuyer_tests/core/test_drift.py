import json
import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats
from scipy.spatial import distance

from hvbuyer_assets import datagen
from hvbuyer_assets.core.cleaning import clean_customers, clean_transactions
from hvbuyer_assets.core.drift import (
    MISSING,
    TABLE_COLUMNS,
    DriftThresholds,
    _smirnov,
    drift_report,
    ks_pvalue_asymp,
    numeric_bins,
    psi,
    report_table,
)
from hvbuyer_assets.core.features import FEATURE_CATEGORICAL, FEATURE_NUMERIC, build_features, latest_event_time

SEEDS = 40
EMPTY_BIN_SHARE = 1e-4  # documented in core/drift.py: an empty PSI bin counts as this share


def psi_by_hand(reference_counts, current_counts) -> float:
    """The documented PSI: sum((c - r) * ln(c / r)) over bins, shares of 0 replaced by EMPTY_BIN_SHARE."""
    ref = np.asarray(reference_counts, dtype=float)
    cur = np.asarray(current_counts, dtype=float)
    r = np.maximum(ref / ref.sum(), EMPTY_BIN_SHARE)
    c = np.maximum(cur / cur.sum(), EMPTY_BIN_SHARE)
    return float(sum((ci - ri) * math.log(ci / ri) for ri, ci in zip(r, c, strict=True)))


SAMPLE = 2_000  # customers per side in the false-alarm / detection tests


def features(n_customers: int, seed: int, drift: str = "none") -> pd.DataFrame:
    """Real feature rows: a generated drop through cleaning and build_features."""
    customers, transactions = datagen.generate(n_customers, seed=seed, drift=drift)
    clean = clean_customers(customers).clean
    arrived = pd.Series(pd.Timestamp("2030-01-01", tz="UTC"), index=transactions.index)
    tx = clean_transactions(transactions, clean["customer_id"], arrived_at=arrived).clean
    return build_features(tx, clean, latest_event_time(tx)).reset_index(drop=True)


def score(frame: pd.DataFrame) -> np.ndarray:
    """A fixed model-like score of the features (prediction drift follows the features)."""
    z = 0.7 * np.log1p(frame["spend_90d"].to_numpy()) + 0.02 * (frame["age"].fillna(40).to_numpy() - 40) - 4.5
    return 1 / (1 + np.exp(-z))


@pytest.fixture(scope="module")
def pools() -> dict[str, pd.DataFrame]:
    """Feature pools: customers are i.i.d. within a world, so disjoint random subsets are independent samples."""
    return {
        "none": features(2 * SAMPLE * 5, seed=7),
        "demographics": features(SAMPLE * 5, seed=8, drift="demographics"),
        "behaviour": features(SAMPLE * 5, seed=8, drift="behaviour"),
    }


def report_of(reference: pd.DataFrame, current: pd.DataFrame, **kwargs) -> dict:
    report = drift_report(
        reference, current, FEATURE_NUMERIC, FEATURE_CATEGORICAL, score(reference), score(current), **kwargs
    )
    json.dumps(report, allow_nan=False)  # plain JSON, no NaN
    return report


def by_name(report: dict) -> dict[str, dict]:
    return {f["feature"]: f for f in report["features"]}


# --- statistics equal scipy's ----------------------------------------------------------------------------------


def _ks_case(rng: np.random.Generator, kind: str, n1: int, n2: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    if kind == "normal":
        return rng.normal(0, 1, n1), rng.normal(shift, 1, n2)
    if kind == "counts":  # heavy ties
        return rng.poisson(3, n1).astype(float), rng.poisson(3 + shift, n2).astype(float)
    return np.round(rng.lognormal(4, 1, n1), 2), np.round(rng.lognormal(4 + shift, 1, n2), 2)


@pytest.mark.parametrize(
    ("kind", "n1", "n2", "shift"),
    [
        ("normal", 600, 900, 0.1),  # exact p-value (scipy itself)
        ("counts", 9_000, 10_000, 0.05),  # exact, many ties
        ("normal", 12_000, 9_000, 0.0),  # asymptotic, null
        ("money", 150_000, 120_000, 0.03),  # asymptotic, Smirnov branch (2.2 <= n d^2 < 370)
        ("counts", 200_000, 250_000, 0.04),  # asymptotic, Smirnov branch, ties
        ("normal", 50_000, 60_000, 0.5),  # asymptotic, p ~ 0
    ],
)
def test_ks_equals_scipy(kind: str, n1: int, n2: int, shift: float) -> None:
    rng = np.random.default_rng(n1 + n2)
    a, b = _ks_case(rng, kind, n1, n2, shift)
    ref = pd.DataFrame({"x": np.where(rng.random(n1) < 0.05, np.nan, a)})  # KS ignores missing values
    cur = pd.DataFrame({"x": np.where(rng.random(n2) < 0.1, np.nan, b)})
    got = drift_report(ref, cur, ["x"], [])["features"][0]
    expected = stats.ks_2samp(ref["x"].dropna().to_numpy(), cur["x"].dropna().to_numpy())
    assert got["ks_statistic"] == pytest.approx(float(expected.statistic), abs=1e-9, rel=0)
    assert got["ks_pvalue"] == pytest.approx(float(expected.pvalue), abs=1e-9, rel=0)


def test_ks_asymptotic_pvalue_and_smirnov_equal_scipy() -> None:
    n = 50_000  # ks_pvalue_asymp(d, 2n, 2n) uses n
    for d in (1e-5, 1e-4, 0.003, 0.0047, 0.01, 0.03, 0.07, 0.1, 0.6):  # every branch of scipy's kstwo.sf
        expected = float(np.clip(stats.distributions.kstwo.sf(d, n), 0, 1))
        assert ks_pvalue_asymp(d, 2 * n, 2 * n) == pytest.approx(expected, abs=1e-9, rel=0), d
    for n, x in ((20_000, 0.015), (150_000, 0.006), (150_000, 0.5)):
        assert _smirnov(float(n), x) == pytest.approx(float(special.smirnov(n, x)), abs=1e-9, rel=1e-8)


def test_categorical_statistics_equal_scipy() -> None:
    rng = np.random.default_rng(3)
    ref = pd.Series(rng.choice(["North", "South", "East", None], 3_000, p=[0.5, 0.3, 0.15, 0.05]), dtype="string")
    cur = pd.Series(rng.choice(["North", "South", "Mars", None], 2_000, p=[0.4, 0.3, 0.2, 0.1]), dtype="string")
    got = drift_report(ref.to_frame("region"), cur.to_frame("region"), [], ["region"])["features"][0]
    categories = ["East", "Mars", "North", "South"]
    table = np.array(
        [
            [*(int((ref == c).sum()) for c in categories), int(ref.isna().sum())],
            [*(int((cur == c).sum()) for c in categories), int(cur.isna().sum())],
        ]
    )
    expected = stats.chi2_contingency(table, correction=False)
    assert got["chi2"] == pytest.approx(float(expected.statistic), abs=1e-9, rel=0)
    assert got["chi2_pvalue"] == pytest.approx(float(expected.pvalue), abs=1e-9, rel=0)
    assert got["js_distance"] == pytest.approx(float(distance.jensenshannon(table[0], table[1], base=2)), abs=1e-9)
    assert got["psi"] == pytest.approx(psi_by_hand(table[0], table[1]), abs=1e-12)
    assert got["unseen_categories"] == ["Mars"]
    assert got["missing_share_reference"] == pytest.approx(table[0, -1] / 3_000)
    assert got["categories"] == 5  # four categories (one unseen in the reference) + missing


def test_psi_hand_computation() -> None:
    # shares 0.5/0.3/0.2 -> 0.3/0.3/0.4
    assert psi([50, 30, 20], [30, 30, 40]) == pytest.approx(
        (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.4 - 0.2) * math.log(0.4 / 0.2), abs=1e-12
    )
    # an empty bin counts as a share of 1e-4
    assert psi([10, 0], [5, 5]) == pytest.approx(
        (0.5 - 1) * math.log(0.5 / 1) + (0.5 - 1e-4) * math.log(0.5 / 1e-4), abs=1e-12
    )
    assert psi([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="aligned"):
        psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="positive total"):
        psi([0, 0], [1, 2])


def test_numeric_bins_are_reference_quantiles() -> None:
    rng = np.random.default_rng(5)
    values = rng.lognormal(3, 1, 1_001)
    edges = numeric_bins(np.append(values, [np.nan, np.inf]), bins=10)  # missing values are not binned
    expected = np.unique(np.quantile(values, np.arange(1, 10) / 10, method="inverted_cdf"))
    np.testing.assert_array_equal(edges[1:-1], expected)
    assert edges[0] == -np.inf and edges[-1] == np.inf
    counts = rng.poisson(0.3, 1_000).astype(float)  # ~74% zeros: repeated deciles collapse into one bin
    np.testing.assert_array_equal(numeric_bins(counts, 10), [-np.inf, 0.0, 1.0, np.inf])
    np.testing.assert_array_equal(numeric_bins([np.nan, np.nan], 10), [-np.inf, np.inf])


def test_numeric_psi_by_hand_with_missing_bin() -> None:
    reference = pd.DataFrame({"x": np.arange(1.0, 1001.0)})
    current = pd.DataFrame({"x": np.concatenate([np.arange(1.0, 601.0), [5000.0] * 200, [np.nan] * 200])})
    got = drift_report(reference, current, ["x"], [], thresholds=DriftThresholds(min_rows=100))["features"][0]
    # deciles 100, 200, ..., 900; right-closed bins, open ends, then the missing bin
    ref_counts = [100] * 10 + [0]
    cur_counts = [100] * 6 + [0] * 3 + [200] + [200]
    assert got["psi"] == pytest.approx(psi_by_hand(ref_counts, cur_counts), abs=1e-12)
    assert got["missing_share_reference"] == 0.0 and got["missing_share_current"] == pytest.approx(0.2)
    assert got["drifted"] and got["reason"].startswith("PSI")


# --- decision rule --------------------------------------------------------------------------------------------------


@pytest.mark.slow  # 40 report pairs on real generated features
def test_no_false_alarm_on_two_samples_of_one_distribution(pools: dict[str, pd.DataFrame]) -> None:
    pool = pools["none"]
    verdicts, flagged = Counter(), Counter()
    max_psi = 0.0
    for seed in range(SEEDS):
        pick = np.random.default_rng(seed).permutation(len(pool))[: 2 * SAMPLE]
        report = report_of(pool.iloc[pick[:SAMPLE]], pool.iloc[pick[SAMPLE:]])
        verdicts[report["verdict"]] += 1
        flagged.update(f["feature"] for f in [*report["features"], report["prediction"]] if f["drifted"])
        assert report["drifted_features"] == []
        max_psi = max(max_psi, *(f["psi"] for f in report["features"]), report["prediction"]["psi"])
    # What the README claims (measured: 40/40, no feature and not the score flagged in any of the 40 pairs).
    assert verdicts == {"no_drift": SEEDS}, (verdicts, max_psi)
    assert flagged == Counter(), flagged


@pytest.mark.slow
@pytest.mark.parametrize("drift", ["demographics", "behaviour"])
def test_real_shift_is_detected(pools: dict[str, pd.DataFrame], drift: str) -> None:
    verdicts = Counter()
    for seed in range(SEEDS):
        rng = np.random.default_rng(1_000 + seed)
        reference = pools["none"].iloc[rng.choice(len(pools["none"]), SAMPLE, replace=False)]
        current = pools[drift].iloc[rng.choice(len(pools[drift]), SAMPLE, replace=False)]
        report = report_of(reference, current)
        verdicts[report["verdict"]] += 1
    assert verdicts["drift"] >= 0.95 * SEEDS, verdicts


def test_drifted_features_and_reasons_on_demographic_shift(pools: dict[str, pd.DataFrame]) -> None:
    report = report_of(pools["none"].iloc[:SAMPLE], pools["demographics"].iloc[:SAMPLE])
    features = by_name(report)
    assert report["verdict"] == "drift" and report["drift"] is True
    assert {"age", "region"} <= set(report["drifted_features"])
    assert "major shift" in report["reason"] and "age" in report["reason"]
    assert features["age"]["ks_statistic"] >= 0.1 and features["age"]["ks_pvalue"] < 0.01
    assert not features["n_failed"]["drifted"] and features["n_failed"]["reason"].startswith("no shift")
    assert report["rows"] == {"reference": SAMPLE, "current": SAMPLE}
    assert report["thresholds"]["psi"] == 0.2 and report["drifted_share"] == pytest.approx(
        len(report["drifted_features"]) / len(FEATURE_COLUMNS_ALL)
    )


FEATURE_COLUMNS_ALL = FEATURE_NUMERIC + FEATURE_CATEGORICAL


def _shifted(n: int, shifts: dict[str, float], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({name: rng.normal(shift, 1, n) for name, shift in shifts.items()})


def test_dataset_rule_needs_broad_drift_a_major_shift_or_score_drift() -> None:
    names = [f"f{i}" for i in range(6)]
    reference = _shifted(20_000, dict.fromkeys(names, 0.0), 1)
    # one moderate shift (KS ~0.12 >= 0.1, PSI ~0.05 < 0.25): the feature drifts, the dataset does not
    one = _shifted(20_000, {**dict.fromkeys(names, 0.0), "f0": 0.3}, 2)
    report = drift_report(reference, one, names, [])
    assert report["drifted_features"] == ["f0"] and report["verdict"] == "no_drift", report["reason"]
    # the same moderate shift in half of the features: broad drift
    half = _shifted(20_000, {**dict.fromkeys(names, 0.0), "f0": 0.3, "f1": 0.3, "f2": 0.3}, 3)
    report = drift_report(reference, half, names, [])
    assert report["verdict"] == "drift" and "3/6 features drifted" in report["reason"]
    # a tiny shift: significant p-value at this n, but no effect -> not drifted
    tiny = _shifted(20_000, {**dict.fromkeys(names, 0.0), "f0": 0.05}, 4)
    f0 = drift_report(reference, tiny, names, [])["features"][0]
    assert f0["ks_pvalue"] < 0.01 and not f0["drifted"]
    # score drift alone makes dataset drift
    rng = np.random.default_rng(5)
    report = drift_report(reference, one, names, [], rng.beta(2, 8, 20_000), rng.beta(4, 6, 20_000))
    assert report["prediction"]["drifted"] and report["verdict"] == "drift" and "score drifted" in report["reason"]


# --- guards and edge cases ------------------------------------------------------------------------------------------


def test_small_samples_give_insufficient_data_never_drift() -> None:
    reference = _shifted(400, {"a": 0.0, "b": 0.0}, 1)
    current = _shifted(3_000, {"a": 3.0, "b": 3.0}, 2)
    report = drift_report(reference, current, ["a", "b"], [], np.zeros(400), np.ones(3_000))
    assert report["verdict"] == "insufficient_data" and report["drift"] is False
    assert report["drifted_features"] == [] and "fewer than 500 rows" in report["reason"]
    assert all(not f["drifted"] and f["psi"] > 1 for f in report["features"])  # statistics still reported
    assert not report["prediction"]["drifted"]
    json.dumps(report, allow_nan=False)


def test_missing_share_jump_counts_as_drift() -> None:
    rng = np.random.default_rng(9)
    reference = pd.DataFrame({"x": np.where(rng.random(5_000) < 0.05, np.nan, rng.normal(size=5_000))})
    current = pd.DataFrame({"x": np.where(rng.random(5_000) < 0.5, np.nan, rng.normal(size=5_000))})
    got = drift_report(reference, current, ["x"], [])["features"][0]
    assert got["drifted"] and got["psi"] >= 0.2  # the non-missing values did not move: KS is small
    assert got["ks_statistic"] < 0.05
    assert got["missing_share_current"] == pytest.approx(float(current["x"].isna().mean()))


def test_empty_constant_and_all_missing_columns_give_plain_json() -> None:
    n = 1_000
    reference = pd.DataFrame(
        {
            "const": np.full(n, 3.0),
            "moved": np.full(n, 3.0),
            "nan": np.full(n, np.nan),
            "inf": np.full(n, np.inf),
            "cat": pd.array(["a"] * n, dtype="string[pyarrow]"),
            "nocat": pd.array([None] * n, dtype="string[pyarrow]"),
        }
    )
    current = reference.assign(moved=np.full(n, 4.0))
    report = drift_report(reference, current, ["const", "moved", "nan", "inf"], ["cat", "nocat"])
    text = json.dumps(report, allow_nan=False)
    features = by_name(json.loads(text))
    assert features["const"]["psi"] == 0.0 and features["const"]["ks_statistic"] == 0.0
    assert features["const"]["ks_pvalue"] == 1.0 and not features["const"]["drifted"]
    assert features["moved"]["drifted"] and features["moved"]["ks_statistic"] == 1.0
    for name in ("nan", "inf"):  # non-finite values are missing: no KS, PSI 0 (both all-missing)
        assert features[name]["ks_statistic"] is None and features[name]["psi"] == 0.0
        assert features[name]["missing_share_current"] == 1.0 and not features[name]["drifted"]
    assert features["cat"]["chi2"] == 0.0 and features["cat"]["js_distance"] == 0.0
    assert features["nocat"]["categories"] == 1 and features["nocat"]["missing_share_reference"] == 1.0
    assert features["nocat"]["unseen_categories"] == [] and MISSING not in features["nocat"]["unseen_categories"]

    empty = drift_report(reference.iloc[:0], current, ["const", "nan"], ["cat"], np.array([]), np.ones(5))
    json.dumps(empty, allow_nan=False)
    assert empty["verdict"] == "insufficient_data" and empty["rows"] == {"reference": 0, "current": n}
    assert all(f["psi"] is None and f["reason"].startswith("not judged") for f in empty["features"])
    assert empty["prediction"]["psi"] is None


def test_validation_names_the_column_and_the_field() -> None:
    frame = _shifted(10, {"a": 0.0}, 1)
    with pytest.raises(ValueError, match="'b' is missing from the current frame"):
        drift_report(frame.assign(b=1.0), frame, ["a", "b"], [])
    with pytest.raises(ValueError, match="both numeric and categorical"):
        drift_report(frame, frame, ["a"], ["a"])
    with pytest.raises(ValueError, match="DriftThresholds.bins"):
        DriftThresholds(bins=1)
    with pytest.raises(ValueError, match="DriftThresholds.psi"):
        DriftThresholds(psi=float("nan"))


def test_report_table(pools: dict[str, pd.DataFrame]) -> None:
    report = report_of(pools["none"].iloc[:SAMPLE], pools["behaviour"].iloc[:SAMPLE])
    table = report_table(report)
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert list(table["feature"]) == [*FEATURE_COLUMNS_ALL, "score"]
    assert table["drifted"].dtype == bool and table["drifted"].sum() == len(report["drifted_features"]) + int(
        report["prediction"]["drifted"]
    )
    assert table.set_index("feature").loc["score", "kind"] == "prediction"
    assert report_table({"features": [], "prediction": None}).empty
