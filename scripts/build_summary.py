"""What the last build produced, in a few lines, read from the stored assets (``make run`` prints it after the build).

Reads ``models/model_evaluation.json``, ``models/champion_model.json``, ``monitoring/drift_report.json`` and the row
count of ``scores/customer_scores.parquet`` under the data dir (``HVBUYER_DATA_DIR``). An asset the build did not
reach is reported as missing; the exit code is non-zero only when none of them exists.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pyarrow.parquet as pq
from upath import UPath

from hvbuyer_assets.settings import load_settings
from hvbuyer_assets.storage import location
from hvbuyer_assets.storage.catalog import entry


def _json(path: UPath) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _rows(path: UPath) -> int | None:
    if not path.exists():
        return None
    with path.open("rb") as handle:
        return int(pq.ParquetFile(handle).metadata.num_rows)


def summary_lines(data_dir: str, s3_endpoint_url: str | None = None) -> list[str]:
    """One line per outcome: hold-out ROC-AUC against the baselines, the champion, the drift verdict, scores."""
    root = location(data_dir, s3_endpoint_url)
    evaluation = _json(root / entry("model_evaluation").relative(".json"))
    champion = _json(root / entry("champion_model").relative(".json"))
    drift = _json(root / entry("drift_report").relative(".json"))
    scored = _rows(root / entry("customer_scores").relative())
    lines = []
    if evaluation:
        baselines = ", ".join(f"{kind} {m['roc_auc']:.3f}" for kind, m in evaluation.get("baselines", {}).items())
        lines.append(
            f"hold-out ROC-AUC  {evaluation['metrics']['roc_auc']:.3f} (baselines: {baselines or 'none'}; "
            f"{evaluation.get('holdout_rows', '?')} customers as of {str(evaluation.get('holdout_cutoff', '?'))[:10]})"
        )
    else:
        lines.append("hold-out ROC-AUC  missing: model_evaluation was not built")
    if champion:
        decision = f"{champion['decision']}: {champion['reason']}"
        lines.append(f"champion          v{champion['champion_version']} ({decision})")
    else:
        lines.append("champion          none: champion_model was not built")
    if drift:
        lines.append(f"drift             {drift['verdict']} ({drift.get('reason', '')})")
    else:
        lines.append("drift             missing: drift_report was not built")
    lines.append(
        f"customers scored  {scored:,}" if scored is not None else "customers scored  none: customer_scores missing"
    )
    return lines


def main() -> int:
    settings = load_settings()
    lines = summary_lines(settings.data_dir, settings.s3_endpoint_url)
    print(f"== build summary ({settings.data_dir})")
    for line in lines:
        print(f"   {line}")
    return 0 if any("missing" not in line and "none:" not in line for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
