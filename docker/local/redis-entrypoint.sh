#!/bin/sh
# compose's `command` starts with the server's name, as the official image expects.
set -eu
[ "${1:-}" = "redis-server" ] && shift
exec redis-server --protected-mode no --dir /data "$@"
