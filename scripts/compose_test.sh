#!/usr/bin/env bash
# make compose-test: the container build, tested. Builds the project's image from docker/,
# brings up the compose stack with podman (postgres, redis, rabbitmq, migrate, web, worker,
# beat, flower), runs a graph end to end through the API from the host, checks /ready,
# Flower and /metrics, restarts the worker container mid-run and checks that the run still
# completes, then tears everything down (volumes too).
#
# Opt-in, not part of `make test`: it needs root, installs podman and friends from Debian's
# packages, and takes minutes. Where no registry serves images, the bases are made here from
# Debian's packages (mmdebstrap of bookworm, then `podman import`), with the host's CA
# certificates when the host's way to the package index re-signs TLS. See docker/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/.local/compose-test
mkdir -p "$WORK"
T0=$(date +%s)
say() { echo "[compose-test +$(($(date +%s) - T0))s] $*"; }
fail() { say "FAILED: $*"; exit 1; }

# --- tools ------------------------------------------------------------------------------------
if [ "$(id -u)" != 0 ]; then fail "run as root (podman with netavark, mmdebstrap)"; fi
missing=()
for tool in podman runc mmdebstrap iptables; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing podman, runc, mmdebstrap, iptables from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends podman runc mmdebstrap iptables netavark \
    aardvark-dns uidmap >/dev/null
fi
[ -x .venv/bin/python ] || fail "no .venv: run make setup first"
.venv/bin/python -c "import podman_compose" 2>/dev/null \
  || .venv/bin/pip install --quiet "podman-compose==1.6.0"

# runc, and explicit open-file and process limits within the host's hard limits: podman's
# defaults are refused here ("error setting rlimit"). One file serves run, build and compose.
export CONTAINERS_CONF=$WORK/containers.conf
cat > "$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=4096:4096"]
[engine]
runtime = "runc"
EOF

# --- base images --------------------------------------------------------------------------
BASE=${COMPOSE_TEST_BASE:-localhost/agentgraph-base:bookworm}
SERVICES_BASE=localhost/agentgraph-services:bookworm
ca_hooks=()
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  ca_hooks=(--customize-hook='copy-in /usr/local/share/ca-certificates /usr/local/share'
            --customize-hook='chroot "$1" update-ca-certificates >/dev/null')
fi
debian_base() {  # name, packages
  if podman image exists "$1"; then return; fi
  say "making $1 from Debian's packages (mmdebstrap bookworm: $2)"
  mmdebstrap --quiet --variant=apt --include="ca-certificates,$2" "${ca_hooks[@]}" \
    bookworm "$WORK/base.tar"
  podman import --quiet "$WORK/base.tar" "$1" >/dev/null
  rm -f "$WORK/base.tar"
}
if [ -z "${COMPOSE_TEST_BASE:-}" ]; then
  debian_base "$BASE" python3,python3-venv,python-is-python3
fi
debian_base "$SERVICES_BASE" postgresql-15,redis-server,rabbitmq-server,procps

# --- images ---------------------------------------------------------------------------------
say "building the project's image (docker/Dockerfile, BASE=$BASE)"
podman build --quiet --build-arg "BASE=$BASE" --build-arg PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
  -f docker/Dockerfile -t localhost/agentgraph:latest . >/dev/null
for service in postgres redis rabbitmq; do
  podman build --quiet --build-arg "BASE=$SERVICES_BASE" -f "docker/local/$service.Containerfile" \
    -t "localhost/agentgraph-$service:test" docker/local >/dev/null
done
say "images: $(podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep agentgraph | sort | tr '\n' ';')"

# --- the stack ----------------------------------------------------------------------------
secret() { .venv/bin/python -c "import secrets; print(secrets.token_urlsafe($1))"; }
ADMIN_PASSWORD=$(secret 18)
FLOWER_PASSWORD=$(secret 18)
METRICS_TOKEN=$(secret 24)
FERNET=$(.venv/bin/python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())")
cat > "$WORK/compose.env" <<EOF
DJANGO_ENV=production
DJANGO_SECRET_KEY=$(secret 48)
DJANGO_ALLOWED_HOSTS=localhost,127.0.0.1,web
ADMIN_PASSWORD=$ADMIN_PASSWORD
FLOWER_BASIC_AUTH=admin:$FLOWER_PASSWORD
CREDENTIALS_ENCRYPTION_KEYS=$FERNET
METRICS_TOKEN=$METRICS_TOKEN
LOG_FORMAT=json
ENGINE_NODE_LEASE_SECONDS=5
POSTGRES_USER=agentgraph
POSTGRES_PASSWORD=$(secret 18)
POSTGRES_DB=agentgraph
RABBITMQ_USER=agentgraph
RABBITMQ_PASSWORD=$(secret 18)
EOF
PROJECT=agentgraph-compose-test
compose() {
  .venv/bin/podman-compose --env-file "$WORK/compose.env" -p "$PROJECT" \
    -f docker/compose.yml -f docker/compose.local.yml "$@"
}
container() { podman ps -a --filter "label=com.docker.compose.project=$PROJECT" \
  --filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | head -1; }
teardown() {
  say "tearing down"
  for service in web worker beat flower migrate; do
    name=$(container "$service")
    [ -n "$name" ] && podman logs "$name" > "$WORK/$service.log" 2>&1 || true
  done
  compose down -v >/dev/null 2>&1 || true
  left=$(podman ps -a --filter "label=com.docker.compose.project=$PROJECT" -q | wc -l)
  say "torn down: $left container(s) left; logs of each role in ${WORK#"$ROOT"/}/"
}
trap teardown EXIT
compose down -v >/dev/null 2>&1 || true

healthy() {  # podman runs no healthchecks on its own here (no systemd): run them
  local name; name=$(container "$1")
  [ -n "$name" ] && podman healthcheck run "$name" >/dev/null 2>&1
}
wait_for() {  # what, seconds, command...
  local what=$1 seconds=$2; shift 2
  local deadline=$(($(date +%s) + seconds))
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "$what not within ${seconds}s"
    sleep 1
  done
}

# Created at once, started in stages: podman 4.3 ignores `service_healthy` (podman-compose
# says so), so this script is what waits for each stage.
compose up -d --no-start >"$WORK/up.log" 2>&1
start() { for service in "$@"; do podman start "$(container "$service")" >/dev/null; done; }
say "starting postgres, redis, rabbitmq"
start postgres redis rabbitmq
for service in postgres redis rabbitmq; do
  wait_for "$service healthy" 120 healthy "$service"
done
say "services healthy; migrating"
migrate=$(container migrate)
start migrate
code=$(timeout 300 podman wait "$migrate") || fail "migrate did not finish within 300s"
[ "$code" = 0 ] || { podman logs "$migrate" | tail -20; fail "migrate exited $code"; }
start web worker beat flower
say "migrated; web, worker, beat and flower started"

API=http://127.0.0.1:8000
curl_ok() { curl -fsS -o /dev/null "$@"; }
wait_for "web to answer /health" 120 curl_ok "$API/health" 2>/dev/null
wait_for "/ready (database, Redis, broker, a worker)" 120 curl_ok "$API/ready"
say "/ready: $(curl -fsS "$API/ready")"
for service in web worker flower; do
  wait_for "$service healthcheck" 120 healthy "$service"
done
# Beat's healthcheck reads the watchdog's last-run time, which beat saves every few minutes
# (compose gives it a 5-minute start period): here, its log shows it sending instead.
beat_sent() { podman logs "$(container beat)" 2>&1 | grep -q "Sending due task executions-watchdog"; }
wait_for "beat to send the watchdog" 120 beat_sent
say "healthchecks pass: web, worker, flower; beat sends the watchdog"

web=$(container web)
podman exec "$web" python manage.py ensure_admin >/dev/null
TOKEN=$(curl -fsS -H 'Content-Type: application/json' \
  -d "{\"username\": \"admin\", \"password\": \"$ADMIN_PASSWORD\"}" "$API/api/auth/token/" \
  | .venv/bin/python -c "import json, sys; print(json.load(sys.stdin)['token'])")
api() { curl -fsS -H "Authorization: Token $TOKEN" -H 'Content-Type: application/json' "$@"; }
field() { .venv/bin/python -c "import json, sys; print(json.load(sys.stdin)$1)"; }

# A fan-out, a join and a sleep long enough to restart the worker under it.
GRAPH=$(api -d @- "$API/api/graphs/" <<'EOF' | field '["id"]'
{"name": "compose test",
 "nodes": [
  {"id": "items", "block": "input", "input_default": {"name": "items", "value": [1, 2, 3, 4]}},
  {"id": "each", "block": "step_through_items", "input_default": {}},
  {"id": "double", "block": "calculator", "input_default": {"operation": "multiply", "b": 2, "round_result": true}},
  {"id": "doubled", "block": "output", "input_default": {"name": "doubled"}},
  {"id": "nap", "block": "sleep", "input_default": {"seconds": 12, "value": "rested"}},
  {"id": "rested", "block": "output", "input_default": {"name": "rested"}}],
 "links": [
  {"source_id": "items", "source_name": "result", "sink_id": "each", "sink_name": "items"},
  {"source_id": "each", "source_name": "item", "sink_id": "double", "sink_name": "a"},
  {"source_id": "double", "source_name": "result", "sink_id": "doubled", "sink_name": "value"},
  {"source_id": "nap", "source_name": "output", "sink_id": "rested", "sink_name": "value"}]}
EOF
)
say "graph $GRAPH saved"
RUN=$(api -d '{"inputs": {}}' "$API/api/graphs/$GRAPH/execute/" | field '["id"]')
say "run $RUN started"
status() { api "$API/api/executions/$RUN/" | field '["status"]'; }
node_running() {
  api "$API/api/executions/$RUN/" | .venv/bin/python -c "
import json, sys
nodes = json.load(sys.stdin)['node_executions']
sys.exit(0 if any(n['node_id'] == 'nap' and n['status'] == 'RUNNING' for n in nodes) else 1)"
}
wait_for "the sleep node to run" 60 node_running
say "the sleep node is running: restarting the worker container"
podman restart --time 3 "$(container worker)" >/dev/null
say "worker restarted"
ended() { case "$(status)" in COMPLETED|FAILED|CANCELLED) return 0;; *) return 1;; esac; }
wait_for "the run to end" 180 ended
RECORD=$(api "$API/api/executions/$RUN/")
echo "$RECORD" > "$WORK/run.json"
[ "$(echo "$RECORD" | field '["status"]')" = COMPLETED ] || fail "run ended $(echo "$RECORD" | field '["status"]'): $(echo "$RECORD" | field '["error"]')"
echo "$RECORD" | .venv/bin/python -c "
import json, sys
r = json.load(sys.stdin)
assert sorted(r['outputs']['doubled']) == [2, 4, 6, 8], r['outputs']
assert r['outputs']['rested'] == ['rested'], r['outputs']
nap = [n for n in r['node_executions'] if n['node_id'] == 'nap']
print('outputs', json.dumps(r['outputs']), '| nap attempts', nap[0]['attempts'],
      '| workers', sorted({n['worker'] for n in r['node_executions'] if n['worker']}))
" | while read -r line; do say "run $RUN COMPLETED: $line"; done
NAP=$(echo "$RECORD" | .venv/bin/python -c "
import json, sys
print(next(n['id'] for n in json.load(sys.stdin)['node_executions'] if n['node_id'] == 'nap'))")
api "$API/api/executions/$RUN/nodes/$NAP/logs/" | .venv/bin/python -c "
import json, sys
for line in json.load(sys.stdin)['results']:
    print(line['level'], line['message'])" | while read -r line; do say "nap's log: $line"; done

# --- operations -----------------------------------------------------------------------------
curl_ok -H "Authorization: Bearer $METRICS_TOKEN" "$API/metrics" || fail "/metrics"
nodes_metric=$(curl -fsS -H "Authorization: Bearer $METRICS_TOKEN" "$API/metrics" \
  | grep -c '^agentgraph_' || true)
[ "$nodes_metric" -gt 0 ] || fail "/metrics has no agentgraph_ series"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$API/metrics")" = 401 ] \
  || [ "$(curl -s -o /dev/null -w '%{http_code}' "$API/metrics")" = 403 ] || fail "/metrics open"
say "/metrics: $nodes_metric agentgraph_ lines with the token; refused without it"
FLOWER=http://127.0.0.1:5555
workers=$(curl -fsS -u "admin:$FLOWER_PASSWORD" "$FLOWER/api/workers?refresh=1" \
  | .venv/bin/python -c "import json, sys; print(len(json.load(sys.stdin)))")
[ "$workers" -ge 1 ] || fail "Flower sees no worker"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$FLOWER/")" = 401 ] || fail "Flower open"
say "Flower: $workers worker(s) seen; refused without its password"
say "PASSED in $(($(date +%s) - T0))s"
