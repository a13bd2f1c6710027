#!/usr/bin/env bash
# An Atoll cluster on one machine (docs/SCALING.md, "Run a cluster"): a 3-node NATS JetStream
# cluster, Mosquitto, a PostgreSQL database, and any number of `atoll up` nodes sharing them.
#
#   deploy/cluster.sh backends            # NATS x3, Mosquitto, the database (once)
#   eval "$(deploy/cluster.sh env)"       # the settings every node and `atoll` command share
#   deploy/cluster.sh node a 8081 b 8082  # Atoll nodes (name, HTTP port), started at once
#   deploy/cluster.sh key                 # the admin API key the first start printed
#   deploy/cluster.sh status | down       # what runs; stop everything (data is kept)
#
# Everything lives in $ATOLL_CLUSTER_DIR (default ~/atoll-cluster): configuration, logs, pid
# files, NATS and Mosquitto data, each node's ATOLL_HOME. Ports and the database can be changed
# with NATS_PORTS, NATS_ROUTE_PORTS, NATS_HTTP_PORTS (three each), MQTT_PORT, ATOLL_CLUSTER_PG
# (the PostgreSQL server, a libpq URL without database) and ATOLL_CLUSTER_DB (the database).
# Run it as the user Atoll runs as (Mosquitto and Atoll share the 0600 password file).
set -euo pipefail

DIR=${ATOLL_CLUSTER_DIR:-$HOME/atoll-cluster}
read -r -a NATS_P <<<"${NATS_PORTS:-4222 4223 4224}"
read -r -a ROUTE_P <<<"${NATS_ROUTE_PORTS:-6222 6223 6224}"
read -r -a HTTP_P <<<"${NATS_HTTP_PORTS:-8222 8223 8224}"
MQTT_PORT=${MQTT_PORT:-1883}
PG=${ATOLL_CLUSTER_PG:-postgresql://postgres@127.0.0.1:5432}
DB=${ATOLL_CLUSTER_DB:-atoll}

die() { echo "cluster.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 is not installed (${2:-apt-get install $1})"; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() { # seconds, description, command...
  local secs=$1 what=$2; shift 2
  for _ in $(seq "$secs"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  die "gave up after ${secs}s waiting for $what"
}

nats_url() {
  local hosts=() p
  for p in "${NATS_P[@]}"; do hosts+=("127.0.0.1:$p"); done
  (IFS=,; echo "nats://${hosts[*]}?replicas=3")
}

ingest_password() { # chosen once, URL-safe; every node uses the same one
  local f=$DIR/ingest-password
  [ -s "$f" ] || (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(24))' >"$f")
  cat "$f"
}

cmd_env() {
  mkdir -p "$DIR"
  cat <<EOF
export ATOLL_BUS_URL='$(nats_url)'
export ATOLL_STORE_URL='$PG/$DB'
export ATOLL_REGISTRY_URL='$PG/$DB'
export ATOLL_MOSQUITTO_PASSWORD_FILE='$DIR/mosquitto/passwd'
export ATOLL_MOSQUITTO_ACL_FILE='$DIR/mosquitto/acl'
export ATOLL_MOSQUITTO_PID_FILE='$DIR/mosquitto/mosquitto.pid'
export ATOLL_MQTT_URL='mqtt://atoll-ingest:$(ingest_password)@127.0.0.1:$MQTT_PORT'
EOF
}

start_nats() {
  local i routes="" p
  for p in "${ROUTE_P[@]}"; do routes+="nats://127.0.0.1:$p,"; done
  for i in 0 1 2; do
    local d=$DIR/nats/n$i
    mkdir -p "$d"
    alive "$d/nats.pid" && continue
    cat >"$d/nats-server.conf" <<EOF
server_name: n$i
listen: 127.0.0.1:${NATS_P[$i]}
http: 127.0.0.1:${HTTP_P[$i]}
jetstream { store_dir: "$d" }
cluster {
  name: atoll
  listen: 127.0.0.1:${ROUTE_P[$i]}
  routes: [${routes%,}]
}
EOF
    nohup nats-server -c "$d/nats-server.conf" -l "$d/nats.log" -P "$d/nats.pid" \
      >/dev/null 2>&1 &
  done
  jetstream_ready() { curl -sf "http://127.0.0.1:${HTTP_P[0]}/jsz" | grep -q '"leader"'; }
  wait_for 60 "NATS JetStream to elect a leader ($DIR/nats/n0/nats.log)" jetstream_ready
}

start_mosquitto() {
  local d=$DIR/mosquitto
  mkdir -p "$d"
  alive "$d/mosquitto.pid" && return 0
  touch "$d/passwd" "$d/acl" # Atoll fills them in
  chmod 600 "$d/passwd" "$d/acl"
  # `user` names the account Atoll runs as: Atoll writes passwd and acl with mode 0600, and a
  # mosquitto started as root switches to this user (one that does not exist stops it).
  cat >"$d/mosquitto.conf" <<EOF
listener $MQTT_PORT 127.0.0.1
allow_anonymous false
password_file $d/passwd
acl_file $d/acl
pid_file $d/mosquitto.pid
log_dest file $d/mosquitto.log
persistence true
persistence_location $d/
autosave_interval 1
max_inflight_messages 1000
max_queued_messages 1000000
max_packet_size 1048576
max_connections 20000
user $(id -un)
EOF
  mosquitto -c "$d/mosquitto.conf" -d
  wait_for 30 "Mosquitto on port $MQTT_PORT ($d/mosquitto.log)" \
    bash -c "exec 3<>/dev/tcp/127.0.0.1/$MQTT_PORT"
}

create_database() {
  local exists
  exists=$(psql "$PG/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'") ||
    die "PostgreSQL at $PG does not answer (set ATOLL_CLUSTER_PG)"
  [ "$exists" = 1 ] || psql "$PG/postgres" -qc "CREATE DATABASE \"$DB\"" ||
    die "could not create database $DB"
}

cmd_backends() {
  need nats-server; need mosquitto; need psql postgresql-client; need curl; need python3
  mkdir -p "$DIR"
  create_database
  start_nats
  start_mosquitto
  echo "backends up: NATS ${NATS_P[*]}, Mosquitto $MQTT_PORT, PostgreSQL $PG/$DB"
}

start_node() { # name http_port
  local name=$1 port=$2 d=$DIR/atoll
  mkdir -p "$d"
  alive "$d/$name.pid" && die "node $name already runs (pid $(cat "$d/$name.pid"))"
  ATOLL_HOME="$d/$name" ATOLL_MQTT_NODE_ID="$name" \
    nohup atoll up --http-port "$port" --mqtt external --mqtt-url "$ATOLL_MQTT_URL" \
    >>"$d/$name.log" 2>&1 &
  echo $! >"$d/$name.pid"
}

wait_node() { # name http_port
  local name=$1 port=$2 d=$DIR/atoll
  for _ in $(seq 180); do
    if curl -sf "http://127.0.0.1:$port/api/v1/health" >/dev/null 2>&1 && alive "$d/$name.pid"
    then echo "node $name up: http://127.0.0.1:$port"; return 0; fi
    alive "$d/$name.pid" || break
    sleep 1
  done
  tail -20 "$d/$name.log" >&2
  die "node $name did not come up (log: $d/$name.log)"
}

cmd_node() { # name http_port [name http_port ...]: started at once, then waited for
  [ $# -ge 2 ] && [ $(($# % 2)) = 0 ] ||
    die "usage: cluster.sh node NAME HTTP_PORT [NAME HTTP_PORT ...]"
  need atoll "pip install atoll, or make setup and put .venv/bin on PATH"
  eval "$(cmd_env)"
  local args=("$@")
  for ((i = 0; i < $#; i += 2)); do start_node "${args[i]}" "${args[i + 1]}"; done
  for ((i = 0; i < $#; i += 2)); do wait_node "${args[i]}" "${args[i + 1]}"; done
}

cmd_key() { # the admin API key: printed once, by whichever node made the database
  local key
  key=$(cat "$DIR"/atoll/*.log 2>/dev/null | sed -n 's/^ *admin API key *//p' | head -1) || true
  [ -n "$key" ] || die "no admin API key in $DIR/atoll/*.log (only the first start prints it)"
  echo "$key"
}

stop_pids() { # pid files: SIGTERM to all, wait up to 30 s, then SIGKILL
  local f pids=()
  for f in "$@"; do
    alive "$f" && { pids+=("$(cat "$f")"); kill "$(cat "$f")"; }
  done
  for _ in $(seq 60); do
    local left=0 p
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
    [ $left = 0 ] && break
    sleep 0.5
  done
  for p in "${pids[@]}"; do
    kill -0 "$p" 2>/dev/null && { echo "pid $p did not stop: SIGKILL" >&2; kill -9 "$p"; }
  done
  rm -f "$@"
}

cmd_down() { # the nodes first (they hand their partitions over), then the backends
  shopt -s nullglob
  stop_pids "$DIR"/atoll/*.pid
  stop_pids "$DIR/mosquitto/mosquitto.pid" "$DIR"/nats/n*/nats.pid
  echo "stopped (data kept in $DIR)"
}

cmd_status() {
  local f
  for f in "$DIR"/nats/n*/nats.pid "$DIR"/mosquitto/mosquitto.pid "$DIR"/atoll/*.pid; do
    [ -e "$f" ] || continue
    if alive "$f"; then echo "up    $f"; else echo "down  $f"; fi
  done
}

case ${1:-} in
  backends) cmd_backends ;;
  env) cmd_env ;;
  node) shift; cmd_node "$@" ;;
  key) cmd_key ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
