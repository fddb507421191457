#!/usr/bin/env bash
# `make run`: a sample drop if the raw folder is empty, the first build as a run of the `full_build` job (INFO-level
# console, a summary at the end), then the Dagster UI, the API and the MLflow UI, each URL printed once it answers,
# until Ctrl-C / TERM, which stops all three and every process they started.
#
# Environment (all optional):
#   HVBUYER_DAGSTER_PORT=3000  HVBUYER_API_PORT=8080  HVBUYER_MLFLOW_PORT=5000   loopback ports of the three services
#   HVBUYER_START_TIMEOUT=180   seconds each service has to answer its health URL
#   HVBUYER_STOP_GRACE=3        seconds the services have to exit after Ctrl-C / TERM before they are killed
#   HVBUYER_SKIP_BUILD=1        serve what is already built (no build)
#   DAGSTER_HOME (./.dagster_home), HVBUYER_DATA_DIR, MLFLOW_TRACKING_URI, ...: as for every hvbuyer command
# Exit status: 0 after Ctrl-C / TERM; 1 when a port is taken, a service does not answer in time, or one stops by itself.
set -uo pipefail
cd "$(dirname "$0")/.."
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"
export PATH="$PWD/.venv/bin:$PATH"
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false  # mlflow server would otherwise start a job runner beside the UI
HOST=127.0.0.1
DAGSTER_PORT="${HVBUYER_DAGSTER_PORT:-3000}"
API_PORT="${HVBUYER_API_PORT:-8080}"
MLFLOW_PORT="${HVBUYER_MLFLOW_PORT:-5000}"
START_TIMEOUT="${HVBUYER_START_TIMEOUT:-180}"
GRACE_SECONDS="${HVBUYER_STOP_GRACE:-3}"
# dagster-mlflow's beta notices and the CLI's notices about `dg` say nothing to a user of `make run`.
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::FutureWarning,ignore:Function \`_create_mlflow_run_hook\`:Warning,\
ignore:Class \`MlFlow\`:Warning,ignore:starlette.middleware.wsgi is deprecated:Warning}"

die() { echo "!! $*" >&2; exit 1; }

port_free() {  # port_free PORT: nothing listens on 127.0.0.1:PORT (the services set SO_REUSEADDR too)
  python - "$1" <<'PY'
import socket, sys
with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(sys.argv[1])))
    except OSError:
        sys.exit(1)
PY
}

answers() {  # answers URL: an HTTP 2xx within 2 s
  python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null
}

for spec in "Dagster UI:$DAGSTER_PORT:HVBUYER_DAGSTER_PORT" "API:$API_PORT:HVBUYER_API_PORT" \
  "MLflow UI:$MLFLOW_PORT:HVBUYER_MLFLOW_PORT"; do
  IFS=: read -r name port var <<<"$spec"
  [[ "$port" =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) || die "$var=$port is not a TCP port number"
  port_free "$port" || die "port $port ($name) is already in use on $HOST: stop what holds it, or set $var to a free port"
done
[ "$DAGSTER_PORT" != "$API_PORT" ] && [ "$API_PORT" != "$MLFLOW_PORT" ] && [ "$DAGSTER_PORT" != "$MLFLOW_PORT" ] ||
  die "the three ports must differ (Dagster UI $DAGSTER_PORT, API $API_PORT, MLflow UI $MLFLOW_PORT)"

mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp dagster.yaml "$DAGSTER_HOME/dagster.yaml"
# The data dir and registry every process uses, as absolute locations (dagster dev runs from DAGSTER_HOME).
settings="$(python -c 'from hvbuyer_assets.settings import load_settings as s; print(s().data_dir); print(s().mlflow_tracking_uri)')" ||
  die "could not read the settings (see above)"
{ read -r HVBUYER_DATA_DIR; read -r MLFLOW_TRACKING_URI; } <<<"$settings"
export HVBUYER_DATA_DIR MLFLOW_TRACKING_URI
# Links from Dagster metadata (mlflow_run_id, model version) point at the MLflow UI started below.
export HVBUYER_MLFLOW_UI_URL="${HVBUYER_MLFLOW_UI_URL:-http://$HOST:$MLFLOW_PORT}"

# Every child runs in its own process group (setsid), so that stopping it also stops its children: dagster dev
# starts a webserver, a daemon and code servers, mlflow server a uvicorn worker. A script's background commands
# start with SIGINT ignored; `env --default-signal=INT` gives them back the default, so SIGINT reaches dagster.
spawn() { exec setsid env --default-signal=INT "$@"; }  # run as `spawn CMD... &`: $! is then the group id
names=() pids=()
build_pid=""
stop_all() {  # SIGINT to dagster (it ignores TERM for ~20 s), TERM to the others, KILL whatever outlives the grace
  trap - INT TERM HUP
  local pid i alive
  [ -n "$build_pid" ] && kill -INT -- "-$build_pid" 2>/dev/null
  for i in "${!pids[@]}"; do
    if [[ "${names[$i]}" == Dagster* ]]; then kill -INT -- "-${pids[$i]}"; else kill -TERM -- "-${pids[$i]}"; fi 2>/dev/null
  done
  for _ in $(seq 1 $((GRACE_SECONDS * 5 + 1))); do
    alive=0
    for pid in $build_pid "${pids[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.2
  done
  for pid in $build_pid "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null; done
  echo "   (killed what had not exited ${GRACE_SECONDS} s after the signal)"
}
on_signal() { echo; echo "== stopping"; stop_all; echo "== stopped"; exit 0; }  # Ctrl-C, TERM, a closed terminal
trap on_signal INT TERM HUP

bash scripts/sample_data.sh || die "could not write the sample drop (see above)"

if [ -z "${HVBUYER_SKIP_BUILD:-}" ]; then
  # Every complete drop becomes a partition (arrival order); the first is built here, the raw sensor ingests the
  # others, one run each, once the daemon is up.
  first_drop="$(python -m hvbuyer_assets.register_drops | head -n1)" && [ -n "$first_drop" ] ||
    die "no complete drop in the raw location to build (see above)"
  echo "== building every asset: a run of the full_build job for drop $first_drop (1-2 min on the sample;" \
    "INFO lines only, every event is in the Dagster UI)"
  spawn dagster job execute -m hvbuyer_assets.definitions -j full_build -c scripts/quiet_console.yaml \
    --tags "{\"dagster/partition\": \"$first_drop\"}" &
  build_pid=$!
  wait "$build_pid"
  build_status=$?
  build_pid=""
  if [ "$build_status" = 0 ]; then
    python scripts/build_summary.py
  else
    echo "!! the build failed (status $build_status, see above); starting the services anyway so you can inspect it" >&2
  fi
fi

# The registry's tables exist before the API and the MLflow UI open it together (their migrations of a new SQLite
# store race: "table ... already exists"). The build did it, unless skipped or failed early.
if [[ "$MLFLOW_TRACKING_URI" != http* ]]; then
  python -c 'import sys, mlflow; mlflow.MlflowClient(sys.argv[1], sys.argv[1]).search_registered_models(max_results=1)' \
    "$MLFLOW_TRACKING_URI" 2>/dev/null || die "cannot open the MLflow registry at $MLFLOW_TRACKING_URI"
fi
# The experiment's page on its training runs (MLflow's UI opens an experiment as a GenAI dashboard otherwise).
experiment_runs="$(python -c 'import sys; from hvbuyer_assets import registry as r
print(r.experiment_url(sys.argv[1], r.ensure_experiment(sys.argv[2], sys.argv[3])))' \
  "http://$HOST:$MLFLOW_PORT" "$MLFLOW_TRACKING_URI" "$HVBUYER_DATA_DIR/mlartifacts" 2>/dev/null)" ||
  experiment_runs="(experiment not readable at $MLFLOW_TRACKING_URI)"

# A fresh admin token per session, shared by the API (enables POST /admin/reload) and the runs dagster dev launches
# (champion_model asks the API to reload right after a promotion); the API also polls the alias every
# HVBUYER_POLL_SECONDS. Not set for the first build above: no API is running yet to tell.
export HVBUYER_ADMIN_TOKEN="${HVBUYER_ADMIN_TOKEN:-$(python -c 'import secrets; print(secrets.token_urlsafe(32))')}"
export HVBUYER_API_URL="${HVBUYER_API_URL:-http://$HOST:$API_PORT}"
# dagster dev from DAGSTER_HOME: in the repository it warns that ./dagster.yaml (the template) is not the instance's.
names+=("Dagster UI")
(cd "$DAGSTER_HOME" && spawn dagster dev -w "$OLDPWD/workspace.yaml" -h "$HOST" -p "$DAGSTER_PORT" \
  --log-level warning --code-server-log-level warning) &
pids+=($!)
names+=("API")
spawn env HVBUYER_API_HOST="$HOST" HVBUYER_API_PORT="$API_PORT" python -m hvbuyer_serving &  # HVBUYER_API_WORKERS
pids+=($!)
names+=("MLflow UI")
spawn mlflow server --backend-store-uri "$MLFLOW_TRACKING_URI" --host "$HOST" --port "$MLFLOW_PORT" --workers 1 &
pids+=($!)
ports=("$DAGSTER_PORT" "$API_PORT" "$MLFLOW_PORT")
health=("http://$HOST:$DAGSTER_PORT/server_info" "http://$HOST:$API_PORT/health/live" "http://$HOST:$MLFLOW_PORT/health")
urls=("http://$HOST:$DAGSTER_PORT" "http://$HOST:$API_PORT/docs" "http://$HOST:$MLFLOW_PORT")

failed() {  # failed MESSAGE: stop everything, exit 1
  echo "!! $*" >&2
  stop_all
  exit 1
}
started=$SECONDS
answered=()
while ((${#answered[@]} < ${#pids[@]})); do
  for i in "${!pids[@]}"; do
    [ -n "${answered[$i]:-}" ] && continue
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      wait "${pids[$i]}"
      failed "${names[$i]} exited during start-up (status $?; see its output above; is port ${ports[$i]} in use?)"
    fi
    if answers "${health[$i]}"; then
      answered[$i]=1
      printf '   %-10s answers at %s (%d s)\n' "${names[$i]}" "${urls[$i]}" $((SECONDS - started))
    fi
  done
  ((SECONDS - started > START_TIMEOUT)) && for i in "${!pids[@]}"; do
    [ -z "${answered[$i]:-}" ] && failed "${names[$i]} did not answer ${health[$i]} within ${START_TIMEOUT} s"
  done
  sleep 0.5
done
echo "   MLflow experiment hvbuyer, its training runs: $experiment_runs"
echo "== ready: Dagster UI ${urls[0]}   API ${urls[1]}   MLflow UI ${urls[2]}   (Ctrl-C stops all three)"

wait -n "${pids[@]}"
status=$?
for i in "${!pids[@]}"; do
  kill -0 "${pids[$i]}" 2>/dev/null || failed "${names[$i]} stopped by itself (status $status); stopping the others"
done
failed "a service stopped by itself (status $status); stopping the others"
