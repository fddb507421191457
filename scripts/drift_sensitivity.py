"""`make bench-drift`, second part: what the drift detector catches. Detection rate against shift size (a mean
shift in standard deviations, a change of category mix, more missing values) and the false-alarm rate on
same-world data, over ``--seeds`` trials each, next to Evidently's default ``DataDriftPreset`` on the same frames.

Each trial draws ``--rows`` reference and current rows (with replacement) from real feature rows of two
generated drops of the same world (datagen seeds 0 and 1, cleaned and featurised as in the pipeline), shifts one
voting feature of the current side (``core.shifts``) and asks both detectors. Ours: the dataset verdict
(``drift_report``'s voting features, default thresholds) and whether the shifted feature itself was flagged.
Evidently 0.7.23 runs in its own virtual environment (``--evidently-python``, made by ``make bench-drift``: its
dependency tree stays out of ours) on the same trials, rebuilt from the same pools and seeds by ``core.shifts``:
its dataset drift (share of drifted columns >= 0.5) and its own verdict on the shifted column.

    .venv/bin/python scripts/drift_sensitivity.py [--rows 5000] [--seeds 40] [--evidently-python PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from hvbuyer_assets.core import shifts  # noqa: E402

SHIFTS = [
    shifts.Shift("none"),
    *(shifts.Shift("mean", "age", size) for size in (0.05, 0.1, 0.2, 0.5)),
    *(shifts.Shift("mean", "loyalty_points", size) for size in (0.05, 0.1, 0.2, 0.5)),
    *(shifts.Shift("category", "region", size, "North") for size in (0.02, 0.05, 0.1, 0.2)),
    *(shifts.Shift("missing", "age", size) for size in (0.02, 0.05, 0.1, 0.2)),
]
EVIDENTLY_VENV = REPO / ".venv-evidently"  # `make bench-drift` creates it


def pools(customers: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Voting-feature rows of two same-world drops (the reference pool and the current pool)."""
    sys.path.insert(0, str(REPO / "scripts"))
    from bench_drift import feature_rows

    from hvbuyer_assets.core import drift_report

    numeric, categorical = drift_report.voting_features()
    columns = [*numeric, *categorical]
    return feature_rows(customers, seed=0)[columns].reset_index(drop=True), feature_rows(customers, seed=1)[
        columns
    ].reset_index(drop=True)


def ours(reference_pool: pd.DataFrame, current_pool: pd.DataFrame, rows: int, seeds: int) -> list[dict]:
    """Our detector on every trial: (shift label, seed, dataset drift, shifted column flagged)."""
    from hvbuyer_assets.core import drift, drift_report

    numeric, categorical = drift_report.voting_features()
    out = []
    for shift in SHIFTS:
        for seed in range(seeds):
            reference, current = shifts.trial(reference_pool, current_pool, shift, rows, seed)
            report = drift.drift_report(reference, current, list(numeric), list(categorical))
            flagged = shift.column in report["drifted_features"] if shift.column else bool(report["drifted_features"])
            out.append({"shift": shift.label, "seed": seed, "dataset": report["drift"], "column": flagged})
    return out


EVIDENTLY_RUNNER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
from hvbuyer_assets.core import shifts
spec = json.load(open(sys.argv[2]))
ref_pool, cur_pool = pd.read_parquet(spec["reference"]), pd.read_parquet(spec["current"])
out = []
for raw in spec["shifts"]:
    shift = shifts.Shift(**raw)
    for seed in range(spec["seeds"]):
        reference, current = shifts.trial(ref_pool, cur_pool, shift, spec["rows"], seed)
        result = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference).dict()
        drifted, dataset = {}, None
        for metric in result["metrics"]:
            config, value = metric["config"], metric["value"]
            if config["type"].endswith("DriftedColumnsCount"):
                dataset = bool(value["share"] >= config["drift_share"])
            elif config["type"].endswith("ValueDrift"):
                limit = config["threshold"]
                drifted[config["column"]] = bool(value < limit if "p_value" in config["method"] else value >= limit)
        column = drifted.get(shift.column, False) if shift.column else any(drifted.values())
        out.append({"shift": shift.label, "seed": seed, "dataset": dataset, "column": column})
json.dump(out, open(sys.argv[3], "w"))
"""


def evidently(python: str, reference_pool: pd.DataFrame, current_pool: pd.DataFrame, rows: int, seeds: int) -> list:
    """Evidently's default preset on the same trials, in its own interpreter."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        reference_pool.to_parquet(folder / "reference.parquet")
        current_pool.to_parquet(folder / "current.parquet")
        spec = {
            "reference": str(folder / "reference.parquet"),
            "current": str(folder / "current.parquet"),
            "rows": rows,
            "seeds": seeds,
            "shifts": [vars(s) for s in SHIFTS],
        }
        (folder / "spec.json").write_text(json.dumps(spec))
        (folder / "runner.py").write_text(EVIDENTLY_RUNNER)
        subprocess.run(
            [python, str(folder / "runner.py"), str(REPO), str(folder / "spec.json"), str(folder / "out.json")],
            check=True,
        )
        return json.loads((folder / "out.json").read_text())


def rates(results: Iterable[dict], key: str) -> dict[str, float]:
    frame = pd.DataFrame(list(results))
    return frame.groupby("shift", sort=False)[key].mean().to_dict()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000, help="rows per side of a trial")
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--customers", type=int, default=20000, help="generated customers per pool")
    parser.add_argument("--evidently-python", default=str(EVIDENTLY_VENV / "bin" / "python"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    reference_pool, current_pool = pools(args.customers)
    mine = ours(reference_pool, current_pool, args.rows, args.seeds)
    ours_seconds = time.perf_counter() - started
    theirs: list[dict] | None = None
    if Path(args.evidently_python).exists():
        t = time.perf_counter()
        theirs = evidently(args.evidently_python, reference_pool, current_pool, args.rows, args.seeds)
        evidently_seconds = time.perf_counter() - t
    dataset, column = rates(mine, "dataset"), rates(mine, "column")
    print(f"{args.seeds} trials per row, {args.rows:,} rows per side, pools of {args.customers:,} customers")
    columns = ["shift", "ours: dataset drift", "ours: feature flagged"]
    if theirs is not None:
        columns += ["Evidently preset: dataset drift", "Evidently: feature flagged"]
        ev_dataset, ev_column = rates(theirs, "dataset"), rates(theirs, "column")
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for shift in SHIFTS:
        row = f"| {shift.label} | {dataset[shift.label]:.0%} | {column[shift.label]:.0%} |"
        if theirs is not None:
            row += f" {ev_dataset[shift.label]:.0%} | {ev_column[shift.label]:.0%} |"
        print(row)
    print(f"(ours {ours_seconds:.0f} s" + ("" if theirs is None else f", Evidently {evidently_seconds:.0f} s") + ")")
    if theirs is None:
        print(f"Evidently not run: no interpreter at {args.evidently_python}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
