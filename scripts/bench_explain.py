"""`make bench-explain`: one-row TreeSHAP of the champion's forest, ours (`core/treeshap.py`) next to the `shap`
package's C++ `TreeExplainer(feature_perturbation="tree_path_dependent")` on the same sklearn forest, in one process.

Uses the champion `bench_serve.py` builds (`.bench/serve/data`, built when missing). Explains `--calls` real
customers one row at a time, each row by every candidate in turn (so a shared box's load falls on all alike), and
prints p50/p95 and the ratios against `shap`; checks that both give the same contributions and that they add up to
the forest's probability. `shap` is not a dependency of hvbuyer: `make bench-explain` installs it with `pip install
--target .bench/shap` (it is imported from `--shap-path`); without it only ours is timed.

    .venv/bin/python scripts/bench_explain.py --shap-path .bench/shap
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from bench_serve import REPO, build_champion

from hvbuyer_assets import registry
from hvbuyer_assets.core.treeshap import ForestExplainer, shap_values
from hvbuyer_assets.storage.catalog import entry


def champion_pipeline(data_dir: Path):
    """The fitted sklearn pipeline of the champion version in the data dir's registry."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{data_dir}/mlflow.db"
    version = registry.champion(MlflowClient(uri, uri))
    if version is None:
        raise SystemExit(f"no champion in {uri}: remove {data_dir} and run again to build one")
    return registry.load_version(uri, version.version)


def timed(candidates: dict[str, Callable[[int], object]], rows: int) -> dict[str, np.ndarray]:
    """(wall, this thread's CPU) milliseconds of each candidate on each row (by index), the candidates taking turns
    on every row: on a shared box the wall time includes waiting for a core, the CPU time does not."""
    times = {name: np.empty((2, rows)) for name in candidates}
    for i in range(rows):
        for name, run in candidates.items():
            wall, cpu = time.perf_counter(), time.thread_time()
            run(i)
            times[name][:, i] = (time.perf_counter() - wall) * 1e3, (time.thread_time() - cpu) * 1e3
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300, help="rows explained, one at a time, by each candidate")
    parser.add_argument("--shap-path", help="a `pip install --target` folder holding shap")
    parser.add_argument("--data-dir", default=str(REPO / ".bench" / "serve" / "data"))
    args = parser.parse_args()
    data_dir = Path(args.data_dir).resolve()
    build_champion(data_dir, 20_000)
    pipeline = champion_pipeline(data_dir)
    forest = pipeline.named_steps["classifier"]

    started = time.perf_counter()
    explainer = ForestExplainer(pipeline)
    build_ms = {"ours": (time.perf_counter() - started) * 1e3}
    features = pd.read_parquet(entry("customer_features").path(str(data_dir))).head(args.calls)
    numeric = features[list(explainer.numeric)].to_numpy(np.float64, na_value=np.nan)
    region = features["region"].astype(object).where(features["region"].notna(), "Unknown").astype(str).tolist()
    matrix = explainer.classifier_input(numeric, region)
    candidates: dict[str, Callable[[int], object]] = {
        "ours, contributions": lambda i: shap_values(explainer.paths, matrix[i : i + 1], explainer.width),
        "ours, ForestExplainer.explain": lambda i: explainer.explain(numeric[i : i + 1], region[i : i + 1]),
    }
    ours = shap_values(explainer.paths, matrix, explainer.width)
    proba = forest.predict_proba(matrix)[:, 1]
    print(
        f"== champion forest: {len(forest.estimators_)} trees, {sum(e.tree_.n_leaves for e in forest.estimators_):,}"
        f" leaves; {len(matrix)} customers; load average {os.getloadavg()[0]:.2f} (2-core box, shared)"
    )
    print(
        f"ours: additivity max |sum + expected - forest probability| "
        f"{np.abs(ours.sum(axis=1) + explainer.expected_value - proba).max():.1e}"
    )
    if args.shap_path:
        sys.path.insert(0, str(Path(args.shap_path).resolve()))
        import shap

        started = time.perf_counter()
        tree_explainer = shap.TreeExplainer(forest, feature_perturbation="tree_path_dependent")
        build_ms[f"shap {shap.__version__}"] = (time.perf_counter() - started) * 1e3
        theirs = np.asarray(tree_explainer.shap_values(matrix, check_additivity=False))[..., 1]
        print(f"shap {shap.__version__}: max |ours - shap| {np.abs(ours - theirs).max():.1e}")
        candidates[f"shap {shap.__version__} TreeExplainer"] = lambda i: tree_explainer.shap_values(
            matrix[i : i + 1], check_additivity=False
        )
    times = timed(candidates, len(matrix))
    base = next((name for name in times if name.startswith("shap")), "ours, contributions")
    print(f"\n== one row, {len(matrix)} calls each (ms); ratio = p50 / p50 of {base}, same clock")
    base_p50 = np.percentile(times[base], 50, axis=1)
    for name, ms in times.items():
        (wall50, wall95), (cpu50, cpu95) = np.percentile(ms, [50, 95], axis=1).T
        ratio = np.array([wall50, cpu50]) / base_p50
        print(
            f"{name:<32} wall p50 {wall50:6.2f} p95 {wall95:6.2f} (ratio {ratio[0]:.2f}); "
            f"CPU p50 {cpu50:6.2f} p95 {cpu95:6.2f} (ratio {ratio[1]:.2f})"
        )
    print("tables built in " + ", ".join(f"{name} {ms:.0f} ms" for name, ms in build_ms.items()))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
