#!/usr/bin/env bash
# `make run`: sample data if needed, one full materialization, then the Dagster UI (:3000) and the API (:8080)
# until Ctrl-C, which stops both.
set -uo pipefail
cd "$(dirname "$0")/.."
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"
export PATH="$PWD/.venv/bin:$PATH"
bash scripts/sample_data.sh || exit 1

echo "== materializing the whole asset graph once"
if ! dagster asset materialize -m hvbuyer_assets.definitions --select '*'; then
  echo "!! the initial materialization failed (see above); starting the UI anyway so you can inspect it" >&2
fi

pids=()
stop() { trap - INT TERM; echo; echo "== stopping"; kill "${pids[@]}" 2>/dev/null; wait; exit 0; }
trap stop INT TERM
dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000 & pids+=($!)
uvicorn hvbuyer_serving.app:app --host 127.0.0.1 --port 8080 & pids+=($!)
echo "== Dagster UI: http://127.0.0.1:3000   API: http://127.0.0.1:8080/docs   (Ctrl-C stops both)"
wait -n "${pids[@]}"
stop
