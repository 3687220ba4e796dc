#!/usr/bin/env bash
# Local PostgreSQL, Redis and RabbitMQ for development and tests.
#
#   scripts/services.sh install   install missing servers from Debian's packages
#   scripts/services.sh start     install if needed, start all three, wait until they answer
#   scripts/services.sh stop      stop all three
#   scripts/services.sh status    say which ones answer
#
# Everything lives under $SERVICES_DIR (default: .local/ in the project): data, logs, pid
# files. Ports are chosen so they never clash with system instances (see config/settings.py
# for the same defaults). Starting twice is harmless: a server that answers is left alone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVICES_DIR="${SERVICES_DIR:-$ROOT/.local}"
PG_PORT="${PG_PORT:-55432}"
REDIS_PORT="${REDIS_PORT:-56379}"
AMQP_PORT="${AMQP_PORT:-55672}"
AMQP_DIST_PORT="${AMQP_DIST_PORT:-55673}"
RABBIT_NODE="${RABBIT_NODE:-agentgraph@localhost}"
DB_NAME="${DB_NAME:-agentgraph}"
DB_USER="${DB_USER:-agentgraph}"
DB_PASSWORD="${DB_PASSWORD:-agentgraph}"

log() { printf '[services] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

# Run a command as a system user when we are root (PostgreSQL refuses to run as root;
# RabbitMQ's files belong to the rabbitmq user); as ourselves otherwise.
as_user() {
  local user="$1"; shift
  if is_root; then runuser -u "$user" -- "$@"; else "$@"; fi
}

pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && echo "$d"
}

install_missing() {
  local pkgs=()
  [ -n "$(pg_bindir)" ] && [ -x "$(pg_bindir)/initdb" ] || pkgs+=(postgresql)
  command -v redis-server >/dev/null || pkgs+=(redis-server)
  [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null \
    || pkgs+=(rabbitmq-server)
  # The scale-out demonstration (bench/scale_out.py) joins network namespaces with these.
  command -v ip >/dev/null || pkgs+=(iproute2)
  command -v socat >/dev/null || pkgs+=(socat)
  [ ${#pkgs[@]} -eq 0 ] && return 0
  if ! is_root; then
    die "missing: ${pkgs[*]}. Install them once as root:
    sudo apt-get update && sudo apt-get install -y ${pkgs[*]}
then run this again (the servers are started as your user, under $SERVICES_DIR)."
  fi
  log "installing ${pkgs[*]} from Debian's packages"
  # policy-rc.d stops Debian from starting system-wide instances while installing:
  # ours run under the project folder on their own ports.
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; created=1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  [ $created = 1 ] && rm -f "$policy"
  return 0
}

# PostgreSQL and RabbitMQ run as their system users, who must be able to reach their data
# folders. When the project sits under a folder such a user cannot enter (e.g. /root), the
# data goes to /tmp instead, in a folder named after the project's path.
service_dir() {
  local name="$1" user="$2" d="$SERVICES_DIR/$1"
  if is_root && ! runuser -u "$user" -- test -x "$SERVICES_DIR" 2>/dev/null; then
    d="/tmp/agentgraph-$name-$(echo "$SERVICES_DIR" | md5sum | cut -c1-8)"
  fi
  echo "$d"
}
pg_dir() { service_dir postgres postgres; }
rabbit_dir() { service_dir rabbitmq rabbitmq; }

pg_ready() { "$(pg_bindir)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" 2>/dev/null; }

start_postgres() {
  local bin dir; bin="$(pg_bindir)"; dir="$(pg_dir)"
  if pg_ready; then log "postgres already answers on :$PG_PORT"; else
    mkdir -p "$dir"
    is_root && chown postgres:postgres "$dir" && chmod 700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      log "initialising postgres in $dir/data"
      as_user postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
        --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    fi
    log "starting postgres on :$PG_PORT"
    # fsync off: this is a throwaway local cluster; durability across power loss is not
    # what it is for, and fsync makes the test suite several times slower.
    as_user postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
      -o "-p $PG_PORT -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
      start >/dev/null || { tail -n 30 "$dir/postgres.log" >&2; die "postgres did not start"; }
  fi
  local psql=("$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qAt)
  if [ "$("${psql[@]}" -c "select 1 from pg_roles where rolname='$DB_USER'")" != 1 ]; then
    "${psql[@]}" -c "create role $DB_USER login createdb password '$DB_PASSWORD'"
  fi
  if [ "$("${psql[@]}" -c "select 1 from pg_database where datname='$DB_NAME'")" != 1 ]; then
    "${psql[@]}" -c "create database $DB_NAME owner $DB_USER"
  fi
}

stop_postgres() {
  local dir; dir="$(pg_dir)"
  [ -f "$dir/data/postmaster.pid" ] || return 0
  as_user postgres "$(pg_bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

redis_ready() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

start_redis() {
  local dir="$SERVICES_DIR/redis"
  if redis_ready; then log "redis already answers on :$REDIS_PORT"; return; fi
  mkdir -p "$dir"
  log "starting redis on :$REDIS_PORT"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir" --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --save "" --appendonly no
  wait_for "redis" redis_ready 30
}

stop_redis() {
  redis_ready && redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
}

# Runs a RabbitMQ program with every file of our node under our folder (RABBITMQ_*), as the
# rabbitmq user when we are root. HOME holds the Erlang cookie shared by server and ctl.
rabbit_run() {
  local dir; dir="$(rabbit_dir)"
  local vars=(RABBITMQ_NODENAME="$RABBIT_NODE" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    RABBITMQ_NODE_PORT="$AMQP_PORT" RABBITMQ_DIST_PORT="$AMQP_DIST_PORT"
    RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log"
    RABBITMQ_PID_FILE="$dir/rabbitmq.pid" RABBITMQ_CONFIG_FILE="$dir/rabbitmq"
    RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" HOME="$dir")
  as_user rabbitmq env "${vars[@]}" "$@"
}

rabbit_ready() {
  [ -d "$(rabbit_dir)/mnesia" ] || return 1
  rabbit_run /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBIT_NODE" -q status >/dev/null 2>&1
}

start_rabbitmq() {
  local dir; dir="$(rabbit_dir)"
  if rabbit_ready; then log "rabbitmq already answers on :$AMQP_PORT"; return; fi
  mkdir -p "$dir/log" "$dir/mnesia"
  # Node tasks are acknowledged when they end (acks_late): the delivery-ack timeout must
  # outlast the longest node time limit, plus its grace and the longest retry wait.
  local longest=$(( ${ENGINE_NODE_TIMEOUT_CAP:-3600} + 30 + 300 ))
  printf 'consumer_timeout = %s\n' "$(( longest * 1000 ))" >"$dir/rabbitmq.conf"
  echo '[].' >"$dir/advanced.config"
  echo '[].' >"$dir/enabled_plugins"
  [ -f "$dir/.erlang.cookie" ] || head -c 32 /dev/urandom | md5sum | cut -c1-20 >"$dir/.erlang.cookie"
  chmod 400 "$dir/.erlang.cookie"
  is_root && chown -R rabbitmq:rabbitmq "$dir"
  log "starting rabbitmq on :$AMQP_PORT"
  rabbit_run /usr/lib/rabbitmq/bin/rabbitmq-server >"$dir/log/console.log" 2>&1 &
  disown || true
  wait_for "rabbitmq" rabbit_ready 120 "$dir/log/console.log"
}

stop_rabbitmq() {
  rabbit_ready || return 0
  rabbit_run /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBIT_NODE" -q stop >/dev/null 2>&1 || true
}

wait_for() {
  local name="$1" check="$2" limit="$3" logfile="${4:-}" i
  for ((i = 0; i < limit * 2; i++)); do
    "$check" && { log "$name is up"; return 0; }
    sleep 0.5
  done
  [ -n "$logfile" ] && tail -n 40 "$logfile" >&2
  die "$name did not answer within ${limit}s"
}

main() {
  local cmd="${1:-start}"
  case "$cmd" in
    install) install_missing ;;
    start)
      install_missing
      mkdir -p "$SERVICES_DIR"
      start_postgres
      start_redis
      start_rabbitmq
      log "all services up (postgres :$PG_PORT, redis :$REDIS_PORT, rabbitmq :$AMQP_PORT)"
      ;;
    stop) stop_rabbitmq; stop_redis; stop_postgres; log "stopped" ;;
    restart-rabbitmq)
      # Drops every connection and brings the broker back with its durable queues: what a
      # broker restart looks like to the workers (used by the durability tests).
      rabbit_run /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBIT_NODE" -q stop_app
      rabbit_run /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBIT_NODE" -q start_app
      wait_for "rabbitmq" rabbit_ready 60
      ;;
    stop-rabbitmq-app)
      # The broker refuses every connection until start-rabbitmq-app (outbox tests).
      rabbit_run /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBIT_NODE" -q stop_app
      ;;
    start-rabbitmq-app)
      rabbit_run /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBIT_NODE" -q start_app
      wait_for "rabbitmq" rabbit_ready 60
      ;;
    status)
      pg_ready && log "postgres up" || log "postgres down"
      redis_ready && log "redis up" || log "redis down"
      rabbit_ready && log "rabbitmq up" || log "rabbitmq down"
      ;;
    *) die "usage: $0 install|start|stop|status|restart-rabbitmq|stop-rabbitmq-app|start-rabbitmq-app" ;;
  esac
}

main "$@"
