#!/usr/bin/env bash
# Scale-out measurement (docs/scale-out.md#measured): webhooks per second
# answered 200 through HAProxy with 1, 2 and 3 release bridges on a
# three-node NATS JetStream cluster, all on loopback ports of this machine.
# Installs nats-server, haproxy and ab (apache2-utils) from Debian's
# packages when missing (root or sudo).
#
#   scripts/bench-scale-out.sh                   # 20,000 webhooks, 64 connections
#   REQUESTS=50000 CONCURRENCY=128 scripts/bench-scale-out.sh
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS="${REQUESTS:-20000}"
CONCURRENCY="${CONCURRENCY:-64}"

missing=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v ab >/dev/null 2>&1 || missing+=(apache2-utils)
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
PATH="$PATH:/usr/sbin"

cargo build --release --quiet
bin="$PWD/target/release/print2mqtt"
work="$(mktemp -d)"
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench-scale-out: nothing listens on port $1" >&2
  return 1
}
wait_ready() {
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0
    sleep 0.1
  done
  echo "bench-scale-out: the bridge on port $1 never became ready" >&2
  return 1
}

# Three NATS nodes: JetStream, one cluster, an MQTT listener each.
client=() route=() mqtt=()
for i in 0 1 2; do
  client+=("$(free_port)"); route+=("$(free_port)"); mqtt+=("$(free_port)")
done
for i in 0 1 2; do
  routes=""
  for j in 0 1 2; do
    [ "$i" = "$j" ] || routes+="${routes:+, }nats-route://127.0.0.1:${route[$j]}"
  done
  mkdir -p "$work/n$i"
  cat >"$work/n$i.conf" <<EOF
server_name: n$i
listen: 127.0.0.1:${client[$i]}
jetstream { store_dir: "$work/n$i" }
cluster { name: bench, listen: 127.0.0.1:${route[$i]}, routes: [ $routes ] }
mqtt { listen: 127.0.0.1:${mqtt[$i]}, stream_replicas: 3 }
EOF
  nats-server -c "$work/n$i.conf" >"$work/n$i.log" 2>&1 &
  pids+=($!)
done
nats_pids=("${pids[@]}")
for i in 0 1 2; do wait_port "${client[$i]}"; wait_port "${mqtt[$i]}"; done
nats_urls="nats://127.0.0.1:${client[0]},nats://127.0.0.1:${client[1]},nats://127.0.0.1:${client[2]}"
body="$PWD/tests/fixtures/octoeverywhere/06-print-progress.json"

echo "== machine: $(nproc) cores; $REQUESTS webhooks, $CONCURRENCY connections, one printer"
echo "| bridges | webhooks/s answered 200 | not 200 |"
echo "|---|---|---|"
for n in 1 2 3; do
  bridge_pids=() servers="" peers=""
  for b in $(seq 1 "$n"); do peers+="${peers:+,}b$b"; done
  for b in $(seq 1 "$n"); do
    port="$(free_port)"
    first=$(( (b - 1) % 3 ))
    mqtt_urls=""
    for k in 0 1 2; do
      mqtt_urls+="${mqtt_urls:+,}mqtt://127.0.0.1:${mqtt[$(( (first + k) % 3 ))]}"
    done
    PRINT2MQTT_HTTP__LISTEN="127.0.0.1:$port" \
    PRINT2MQTT_STORAGE__BACKEND=jetstream \
    PRINT2MQTT_STORAGE__DATA_DIR="$work/b$n-$b" \
    PRINT2MQTT_NATS__URLS="$nats_urls" \
    PRINT2MQTT_MQTT__URL="$mqtt_urls" \
    PRINT2MQTT_BRIDGE__INSTANCE="b$b" \
    PRINT2MQTT_BRIDGE__PEERS="$peers" \
    RUST_LOG=warn "$bin" >"$work/b$n-$b.log" 2>&1 &
    pids+=($!); bridge_pids+=($!)
    wait_ready "$port"
    servers+="  server b$b 127.0.0.1:$port check inter 1s"$'\n'
  done
  front="$(free_port)"
  cat >"$work/haproxy-$n.cfg" <<EOF
global
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
frontend webhooks
  bind 127.0.0.1:$front
  default_backend bridges
backend bridges
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
$servers
EOF
  haproxy -f "$work/haproxy-$n.cfg" >"$work/haproxy-$n.log" 2>&1 &
  pids+=($!); haproxy_pid=$!
  wait_port "$front"
  ab -q -k -n "$REQUESTS" -c "$CONCURRENCY" -p "$body" -T application/json \
    "http://127.0.0.1:$front/webhook" >"$work/ab-$n.txt" 2>&1 || true
  rps="$(awk '/Requests per second/ {print $4}' "$work/ab-$n.txt")"
  bad="$(awk '/Non-2xx responses/ {print $3}' "$work/ab-$n.txt")"
  failed="$(awk '/Failed requests/ {print $3}' "$work/ab-$n.txt")"
  echo "| $n | ${rps:-?} | $(( ${bad:-0} + ${failed:-0} )) |"
  kill "$haproxy_pid" "${bridge_pids[@]}" 2>/dev/null || true
  wait "$haproxy_pid" "${bridge_pids[@]}" 2>/dev/null || true
  pids=("${nats_pids[@]}")
done
