"""The estimated ROC-AUC of a scoring (``estimated_performance``, before labels mature) against its realised
ROC-AUC once the labels have matured (``model_performance``), on generated drops.

For each kind of shift: build the sample (champion v1, as of 2026-06-30), land a drop 100 days later with that
shift and ingest it (v1 scores it; ``estimated_performance`` estimates that scoring), then land a second drop 100
days after that (same shift) and ingest it: the first scoring's 90-day labels have matured and
``model_performance`` measures its realised ROC-AUC. Prints one markdown row per case.

datagen's ``demographics`` drift is not a pure covariate shift (it puts other people under the same ids, so the
histories no longer predict the purchases). ``demographics-mix`` is one: the ``none`` case's scoring, its customers
resampled (with replacement, seeded) so that age and region follow datagen's demographics world; P(y | x) is
unchanged, only the mix of x moves. Per resample, the estimate (``core.estimation`` on the resampled scores, the
champion's calibration) against the realised ROC-AUC of the same rows (the training label definition,
``core.labels``, on the clean tables; on the whole scoring it must equal ``model_performance``'s figure); its row
shows the means over 40 resamples (seeds 20-59), the spread after it. Exits non-zero when a pure covariate shift
(``behaviour``, ``demographics-mix``) is off by more than ±0.03.

    .venv/bin/python scripts/validate_estimation.py     # none (+ demographics-mix), demographics, behaviour, concept
    .venv/bin/python scripts/validate_estimation.py --drift behaviour --customers 5000
    .venv/bin/python scripts/validate_estimation.py --nannyml-python .venv-nannyml/bin/python   # + NannyML's CBPE

``--nannyml-python``: also NannyML 0.13.1's CBPE on each case's scoring (in its own interpreter, ``make
.venv-nannyml/bin/python``), fitted on the full build's scoring of v1 with its matured labels (NannyML calibrates
on its reference; ours on the champion's hold-out), as a cross-check of ``core.estimation``.

Runs in temporary data dirs and Dagster instances (nothing of ./data is touched).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from drift_scenarios import run_job  # noqa: E402  (scripts/, on the path when run as a script)

from hvbuyer_assets import datagen  # noqa: E402
from hvbuyer_assets.core import estimation, labels, performance  # noqa: E402
from hvbuyer_assets.datagen.people import AGE_BETA, REGION_SHARES, REGIONS  # noqa: E402
from hvbuyer_assets.definitions import ALL_ASSETS, build_resources  # noqa: E402
from hvbuyer_assets.defs.jobs import JOBS  # noqa: E402
from hvbuyer_tests.pipeline import SAMPLE_CUSTOMERS, Workspace, write_drop, write_sample  # noqa: E402

SCORED_AS_OF = "2026-10-08"  # 100 days after the sample's as-of: the scoring that is estimated
MATURED_AS_OF = "2027-01-16"  # 100 days later: that scoring's labels (90 days) have matured
TOLERANCE = 0.03
# Pure covariate shifts, held to TOLERANCE (datagen's `demographics` swaps the people behind ids: not one of them).
COVARIATE = ("behaviour", "demographics-mix")
MIX = "demographics-mix"
MIX_SEED = 20
MIX_RESAMPLES = 40  # seeds MIX_SEED, MIX_SEED + 1, ...: the spread of the error over resamples
NANNYML_RUNNER = """
import json, sys
import nannyml as nml
import pandas as pd
reference, analysis = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
cbpe = nml.CBPE(problem_type="classification_binary", y_pred_proba="p", y_pred="y_pred", y_true="y",
                metrics=["roc_auc"], chunk_number=1)
cbpe.fit(reference)
frame = cbpe.estimate(analysis).filter(period="analysis").to_df()
print(json.dumps({"roc_auc": float(frame[("roc_auc", "value")].iloc[0]), "version": nml.__version__}))
"""


def _age_probability(age: np.ndarray, world: str) -> np.ndarray:
    """P(age) in a datagen world: age = 18 + floor(68 Beta(a, b)), clipped to 85."""
    a, b = AGE_BETA[world]
    upper = np.where(age >= 85, 1.0, stats.beta.cdf((age - 17) / 68, a, b))
    return upper - stats.beta.cdf((age - 18) / 68, a, b)


def mix_weights(customers: pd.DataFrame) -> np.ndarray:
    """Per customer, P_demographics(age, region) / P_none(age, region) (1 for a missing age or region)."""
    age = customers["age"].to_numpy(dtype="float64")
    known = np.isfinite(age) & (age >= 18) & (age <= 85)
    age_ratio = np.ones(len(age))
    age_ratio[known] = _age_probability(age[known], "demographics") / _age_probability(age[known], "none")
    ratio = dict(zip(REGIONS, np.divide(REGION_SHARES["demographics"], REGION_SHARES["none"]), strict=True))
    region_ratio = customers["region"].map(ratio).fillna(1.0).to_numpy(dtype="float64")
    return age_ratio * region_ratio


def _clean(root: Path, asset: str, key: str) -> pd.DataFrame:
    frame = pd.concat([pd.read_parquet(p) for p in sorted((root / "processed" / asset).glob("*.parquet"))])
    return frame.drop_duplicates(key, keep="last")


def nannyml_estimate(python: str, root: Path, scoring: str) -> float:
    """NannyML's CBPE estimate of ``scoring``'s ROC-AUC, fitted on the full build's scoring of v1 (the earliest
    archive) and its labels, which have matured by the time this runs."""
    history = root / "monitoring" / "score_history"
    reference = pd.read_parquet(sorted(history.glob("*_v1.parquet"))[0])
    as_of = pd.Timestamp(pd.to_datetime(reference["features_as_of"], utc=True).iloc[0])
    transactions = _clean(root, "clean_transactions", "transaction_id")
    truth = labels.build_labels(transactions, reference["customer_id"], as_of).to_numpy()
    analysis = pd.read_parquet(history / f"{scoring}.parquet")
    with tempfile.TemporaryDirectory() as tmp:
        paths = [str(Path(tmp) / "reference.parquet"), str(Path(tmp) / "analysis.parquet")]
        for frame, path, y in ((reference, paths[0], truth), (analysis, paths[1], None)):
            p = frame["large_purchase_probability"].to_numpy(dtype="float64")
            columns = {"p": p, "y_pred": (p >= 0.5).astype("int64")} | ({} if y is None else {"y": y})
            pd.DataFrame(columns).to_parquet(path)
        out = subprocess.run([python, "-c", NANNYML_RUNNER, *paths], check=True, capture_output=True, text=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["roc_auc"])


def demographics_mix(root: Path, estimate: dict[str, object], realised_all: float) -> dict[str, object]:
    """The ``none`` scoring resampled to the demographics world's age and region mix: estimate vs realised."""
    scoring = pd.read_parquet(root / "monitoring" / "score_history" / f"{estimate['scoring']}.parquet")
    calibration = estimation.Calibration.from_dict(
        json.loads((root / "monitoring" / "calibration" / "v1.json").read_text())
    )
    ids = scoring["customer_id"]
    actual = labels.build_labels(
        _clean(root, "clean_transactions", "transaction_id"), ids, pd.Timestamp(str(estimate["as_of"]))
    ).to_numpy()
    scores = scoring["large_purchase_probability"].to_numpy(dtype="float64")
    unweighted = performance.realised_metrics(actual, scores)["roc_auc"]
    if abs(float(unweighted) - realised_all) > 1e-9:
        raise SystemExit(
            f"{MIX}: labels give ROC-AUC {unweighted} on the whole scoring, model_performance {realised_all}"
        )
    customers = _clean(root, "clean_customers", "customer_id").set_index("customer_id").reindex(ids)
    weights = mix_weights(customers)
    figures, ages = [], []
    for seed in range(MIX_SEED, MIX_SEED + MIX_RESAMPLES):
        rows = np.random.default_rng(seed).choice(len(ids), size=len(ids), p=weights / weights.sum())
        estimated = float(estimation.estimate(scores[rows], calibration)["roc_auc"])
        figures.append((estimated, float(performance.realised_metrics(actual[rows], scores[rows])["roc_auc"])))
        ages.append(np.nanmean(customers["age"].to_numpy(dtype="float64")[rows]))
    estimated_all, realised_all_rows = np.asarray(figures).T
    return {
        "drift": MIX,
        "rows": len(ids),
        "holdout": estimate["holdout_roc_auc"],
        "estimated": float(estimated_all.mean()),  # means over the resamples
        "realised": float(realised_all_rows.mean()),
        "error": float((estimated_all - realised_all_rows).mean()),
        "mean_age": float(np.mean(ages)),
        "resampled_errors": estimated_all - realised_all_rows,
    }


def case(drift: str, customers: int, nannyml_python: str | None = None) -> list[dict[str, object]]:
    """Estimate at SCORED_AS_OF and realised figure of that scoring at MATURED_AS_OF, for one kind of shift (and
    for ``none``, the ``demographics-mix`` resampling of the same scoring)."""
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        workspace = Workspace(Path(tmp) / "data")
        write_sample(workspace.raw, customers=customers)
        defs = dg.Definitions(
            assets=ALL_ASSETS, jobs=JOBS, resources=build_resources(workspace.settings), executor=dg.in_process_executor
        )
        run_job(defs, "full_build", instance)
        write_drop(workspace.raw, SCORED_AS_OF, customers=customers, drop="scored", days=100, drift=drift)
        run_job(defs, "ingest_drop", instance)
        monitoring = workspace.root / "monitoring"
        (estimate_file,) = [
            p
            for p in (monitoring / "estimated_performance").glob("*_v1.json")
            if pd.Timestamp(json.loads(p.read_text())["as_of"]).date()
            >= pd.Timestamp(SCORED_AS_OF).date() - pd.Timedelta(days=2)
        ]
        estimate = json.loads(estimate_file.read_text())
        write_drop(workspace.raw, MATURED_AS_OF, customers=customers, drop="matured", days=100, drift=drift)
        run_job(defs, "ingest_drop", instance)
        performance = json.loads((monitoring / "model_performance.json").read_text())
        (evaluation,) = [e for e in performance["evaluations"] if e["model_version"] == "1"]
        if pd.Timestamp(evaluation["scored_as_of"]) != pd.Timestamp(estimate["as_of"]):
            raise SystemExit(f"{drift}: realised figure is of {evaluation['scored_as_of']}, not {estimate['as_of']}")
        realised = float(evaluation["realised"]["roc_auc"])
        mix = [demographics_mix(workspace.root, estimate, realised)] if drift == "none" else []
        nanny = (
            {"nannyml": nannyml_estimate(nannyml_python, workspace.root, estimate["scoring"])} if nannyml_python else {}
        )
        return [
            {
                "drift": drift,
                "rows": estimate["rows"],
                "holdout": estimate["holdout_roc_auc"],
                "estimated": estimate["roc_auc"],
                "realised": realised,
                "error": estimate["roc_auc"] - realised,
                "estimate_degraded": estimate["degraded"],
                "realised_degraded": evaluation.get("degraded"),
                **nanny,
            },
            *mix,
        ]


def _notes(row: dict[str, object]) -> str:
    if "nannyml" in row:
        nanny = float(row["nannyml"])
        return f", NannyML CBPE {nanny:.4f} ({nanny - float(row['realised']):+.4f} vs realised)"
    if "mean_age" not in row:
        return ""
    errors = np.asarray(row["resampled_errors"])
    within = int((np.abs(errors) <= TOLERANCE).sum())
    return (
        f", mean age {row['mean_age']:.1f}; means of {len(errors)} resamples: error sd {errors.std(ddof=1):.4f}, "
        f"{within}/{len(errors)} within ±{TOLERANCE}, max |error| {np.abs(errors).max():.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--drift", choices=datagen.DRIFTS, action="append", help=f"none also measures {MIX}")
    parser.add_argument("--customers", type=int, default=SAMPLE_CUSTOMERS)
    parser.add_argument("--nannyml-python", help="an interpreter with nannyml 0.13.1 (make .venv-nannyml/bin/python)")
    args = parser.parse_args()
    drifts = args.drift or ["none", "demographics", "behaviour", "concept"]
    print(f"{args.customers} customers; scored as of {SCORED_AS_OF}, labels matured by {MATURED_AS_OF}")
    print("| drift | scored rows | hold-out ROC-AUC | estimated | realised | estimated - realised | within ±0.03 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    failed = []
    for drift in drifts:
        started = time.monotonic()
        for row in case(drift, args.customers, args.nannyml_python):
            within = abs(float(row["error"])) <= TOLERANCE
            if row["drift"] in COVARIATE and not within:
                failed.append(str(row["drift"]))
            print(
                f"| {row['drift']} | {row['rows']} | {row['holdout']:.4f} | {row['estimated']:.4f} | "
                f"{row['realised']:.4f} | {row['error']:+.4f} | {'yes' if within else 'no'} |"
                f"   ({time.monotonic() - started:.0f} s{_notes(row)})",
                flush=True,
            )
    if failed:
        raise SystemExit(f"covariate-shift estimate off by more than {TOLERANCE}: {', '.join(failed)}")


if __name__ == "__main__":
    main()
