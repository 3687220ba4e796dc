#!/usr/bin/env bash
# Runs the whole service in the foreground: ASGI server (API, admin, WebSocket) on :8000,
# Celery workers, beat and Flower on :5555. Ctrl-C stops all of it, local servers included.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=.venv/bin
PORT="${PORT:-8000}"
export FLOWER_PORT="${FLOWER_PORT:-5555}"
WORKER_CONCURRENCY="${WORKER_CONCURRENCY:-$(nproc)}"
WEB_CONCURRENCY="${WEB_CONCURRENCY:-$(nproc)}"  # uvicorn processes, sharing the port
LOGS=.local/logs
mkdir -p "$LOGS"
# Metrics files of earlier processes would be summed with this run's: start from none.
METRICS_DIR="${PROMETHEUS_MULTIPROC_DIR:-.local/metrics}"
rm -rf "$METRICS_DIR" && mkdir -p "$METRICS_DIR"

$BIN/python manage.py ensure_admin
$BIN/python manage.py collectstatic --noinput -v 0

pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/services.sh stop
}
trap stop INT TERM EXIT

# Open WebSockets (live pages) must not hold Ctrl-C up: give them 5 s to close. Events are
# small JSON: compressing each one for each socket cost more CPU than it saved bytes.
DATABASE_POOL=1 $BIN/uvicorn config.asgi:application --host 127.0.0.1 --port "$PORT" --lifespan off \
  --timeout-graceful-shutdown 5 --workers "$WEB_CONCURRENCY" --ws-per-message-deflate false &
pids+=($!)
# With no -Q the worker consumes every queue of task_queues (nodes and engine).
$BIN/celery -A config worker -c "$WORKER_CONCURRENCY" -n "worker@%h" -l info &
pids+=($!)
$BIN/celery -A config beat -l info --scheduler schedules.beat:Scheduler \
  --pidfile= &
pids+=($!)
# Flower can revoke and terminate tasks: never open, even locally. Its options (basic auth,
# persistent state) come from the settings through config/flowerconfig.py.
$BIN/celery -A config flower --conf=config/flowerconfig.py >"$LOGS/flower.log" 2>&1 &
pids+=($!)

cat <<MSG

  agentgraph is running
    API        http://127.0.0.1:$PORT/api/        (docs: /api/docs/)
    Admin      http://127.0.0.1:$PORT/admin/      (user admin, password \$ADMIN_PASSWORD or 'admin')
    Flower     http://127.0.0.1:$FLOWER_PORT/         (basic auth \$FLOWER_BASIC_AUTH, default admin:admin)
  Ctrl-C stops everything.

MSG
wait -n "${pids[@]}"
