"""What capping the training set (``HVBUYER_MAX_TRAINING_ROWS``) costs in hold-out ROC-AUC, at a small scale.

Clean data as ``make bench-engines`` prepares it (``bench_engines.prepare``: a generated drop of ``--customers``,
cleaned by the raw and processed assets, or the first N customers of ``--source``). The training set is computed by
the embedded engine with each cap (``Engine.training_rows``: stratified by split and label, seeded, on the engine),
the default random forest is trained on its train rows, and the hold-out ROC-AUC is measured twice: on the capped
set's own hold-out rows (what ``model_evaluation`` would report) and on the whole hold-out (the model's quality,
on the same rows for every cap). Caps are fractions of the whole set; each is repeated with ``--seeds`` seeds.

    python scripts/bench_sampling.py [--customers 50000] [--fractions 1,0.5,0.2,0.1,0.05,0.02] [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engines import clean_files, prepare  # noqa: E402

from hvbuyer_assets.core import evaluation, model  # noqa: E402
from hvbuyer_assets.core.problem import DEFAULTS  # noqa: E402
from hvbuyer_assets.core.sampling import TrainingSample  # noqa: E402
from hvbuyer_assets.engines import EmbeddedEngine  # noqa: E402


def training_set(engine: EmbeddedEngine, files: dict[str, list[str]]) -> pd.DataFrame:
    frames = engine.load(files["clean_transactions"], files["clean_customers"])
    return engine.training_rows(
        frames,
        engine.data_as_of(frames),
        horizon_days=DEFAULTS.horizon_days,
        threshold=DEFAULTS.large_purchase_threshold,
        train_snapshots=DEFAULTS.train_snapshots,
        snapshot_step_days=DEFAULTS.snapshot_step_days,
    )


def roc_auc(fitted: object, rows: pd.DataFrame) -> float:
    return float(evaluation.evaluate(rows["label"], model.predict_proba(fitted, rows))["roc_auc"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--source", type=Path, default=Path(".bench/pipeline/data"))
    parser.add_argument("--fractions", default="1,0.5,0.2,0.1,0.05,0.02")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    files = clean_files(prepare(args.source, args.customers))

    whole = training_set(EmbeddedEngine(), files)
    holdout = whole[whole["split"] == "holdout"]
    print(
        f"{args.customers:,} customers: training set {len(whole):,} rows "
        f"({(whole['split'] == 'train').sum():,} train, {len(holdout):,} hold-out, "
        f"prevalence {whole['label'].mean():.4f})"
    )
    print(f"{'cap':>10} {'train rows':>10} {'ROC-AUC own hold-out':>22} {'ROC-AUC whole hold-out':>24} {'fit s':>6}")
    baseline = None
    for fraction in (float(f) for f in args.fractions.split(",")):
        cap = max(4, round(fraction * len(whole)))
        own, full, seconds, train_rows = [], [], [], 0
        for seed in range(args.seeds if fraction < 1 else 1):
            rows = training_set(EmbeddedEngine(training_sample=TrainingSample(cap, seed)), files)
            began = time.perf_counter()
            fitted = model.train_model(rows, model.ModelParams())
            seconds.append(time.perf_counter() - began)
            train_rows = int((rows["split"] == "train").sum())
            own.append(roc_auc(fitted, rows[rows["split"] == "holdout"]))
            full.append(roc_auc(fitted, holdout))
        mean = statistics.fmean(full)
        baseline = mean if baseline is None else baseline
        spread = f" (min {min(full):.4f})" if len(full) > 1 else ""
        print(
            f"{cap:>10,} {train_rows:>10,} {statistics.fmean(own):>22.4f} {mean:>15.4f}{spread:>9} "
            f"{statistics.fmean(seconds):>6.1f}   {mean - baseline:+.4f} vs the whole set"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
