#!/usr/bin/env bash
# `make run`: sample data if needed, one full materialization, then the Dagster UI (:3000) and the API (:8080)
# until Ctrl-C, which stops both (and every process they started).
set -uo pipefail
cd "$(dirname "$0")/.."
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"
export PATH="$PWD/.venv/bin:$PATH"
bash scripts/sample_data.sh || exit 1

echo "== materializing the whole asset graph once"
if ! dagster asset materialize -m hvbuyer_assets.definitions --select '*'; then
  echo "!! the initial materialization failed (see above); starting the UI anyway so you can inspect it" >&2
fi

# A fresh admin token per run, shared by the API (enables POST /admin/reload) and Dagster (champion_model asks the
# API to reload right after a promotion); the API also polls the alias every HVBUYER_POLL_SECONDS.
export HVBUYER_ADMIN_TOKEN="${HVBUYER_ADMIN_TOKEN:-$(python -c 'import secrets; print(secrets.token_urlsafe(32))')}"
export HVBUYER_API_URL="${HVBUYER_API_URL:-http://127.0.0.1:8080}"

# Each service runs in its own process group, so that stopping it also stops its children (dagster dev starts
# a webserver, a daemon and code servers).
groups=()
stop() {
  trap - INT TERM
  echo; echo "== stopping"
  for g in "${groups[@]}"; do kill -TERM -- "-$g" 2>/dev/null; done
  for _ in $(seq 1 40); do
    alive=0
    for g in "${groups[@]}"; do kill -0 -- "-$g" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && exit 0
    sleep 0.5
  done
  for g in "${groups[@]}"; do kill -KILL -- "-$g" 2>/dev/null; done
  exit 0
}
trap stop INT TERM
setsid dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000 & groups+=($!)
setsid uvicorn hvbuyer_serving.app:app --host 127.0.0.1 --port 8080 & groups+=($!)
echo "== Dagster UI: http://127.0.0.1:3000   API: http://127.0.0.1:8080/docs   (Ctrl-C stops both)"
wait -n
stop
