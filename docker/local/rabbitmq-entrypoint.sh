#!/bin/sh
# The default user from the environment, reachable from other hosts; then the broker.
set -eu
cat > /var/lib/rabbitmq/rabbitmq.conf <<CONF
default_user = ${RABBITMQ_DEFAULT_USER}
default_pass = ${RABBITMQ_DEFAULT_PASS}
loopback_users = none
CONF
export RABBITMQ_CONFIG_FILE=/var/lib/rabbitmq/rabbitmq.conf
exec rabbitmq-server
