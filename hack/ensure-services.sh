#!/usr/bin/env bash
# Makes sure PostgreSQL, RabbitMQ (with its management API) and Redis run on
# their local default ports, installing them from Debian's packages if absent
# and starting any that is stopped. Safe to run again.
set -euo pipefail

say() { printf '==> %s\n' "$*"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # port name
  for _ in $(seq 1 120); do port_open "$1" && return 0; sleep 0.5; done
  echo "error: $2 did not start listening on 127.0.0.1:$1" >&2; return 1
}

missing=()
command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
command -v redis-server >/dev/null || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! port_open 5432; then
  say "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start
  wait_port 5432 PostgreSQL
fi

if ! port_open 6379; then
  say "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379 Redis
fi

if ! port_open 5672; then
  say "starting RabbitMQ"
  rabbitmq-server -detached
  wait_port 5672 RabbitMQ
fi
if ! port_open 15672; then
  say "enabling the RabbitMQ management API"
  rabbitmq-plugins enable rabbitmq_management >/dev/null
  wait_port 15672 "RabbitMQ management"
fi
say "PostgreSQL, RabbitMQ and Redis are up"
