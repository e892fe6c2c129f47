#!/usr/bin/env bash
# Benchmarks. Per-operation costs (criterion), then the load run: a real
# Mosquitto, the release bridge with its durable outbox, a webhook mix for
# N printers, the broker-bound ceiling and the bare hyper + rumqttc program
# measured in the same run; then
# the scale run (10,000 printers: discovery time, RSS, restart restore).
#
#   scripts/bench.sh                 # everything, defaults below
#   PRINTERS=1000 SECONDS_PER_PHASE=10 RATE=1000 SCALE=10000 scripts/bench.sh
#   SKIP_MICRO=1 scripts/bench.sh    # load and scale runs only
set -euo pipefail
cd "$(dirname "$0")/.."

PRINTERS="${PRINTERS:-1000}"
SECONDS_PER_PHASE="${SECONDS_PER_PHASE:-10}"
RATE="${RATE:-1000}"
CONNECTIONS="${CONNECTIONS:-64}"
SCALE="${SCALE:-10000}"

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends mosquitto >/dev/null
fi

echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -srm)"
cargo build --release --quiet
cargo build --release --quiet --example bare_bridge

if [ -z "${SKIP_MICRO:-}" ]; then
  echo "== per-operation costs (criterion)"
  cargo bench --quiet --bench pipeline -- --noplot 2>/dev/null | grep -E "^[a-z_/]+ +time:|^[a-z_]+/[a-z_]+$|time:" || true
fi

echo "== load run"
cargo bench --quiet --bench load -- --bridge target/release/print2mqtt \
  --bare target/release/examples/bare_bridge --printers "$PRINTERS" --seconds "$SECONDS_PER_PHASE" --rate "$RATE" --connections "$CONNECTIONS"

if [ "$SCALE" -gt 0 ]; then
  echo "== scale run"
  cargo bench --quiet --bench load -- --bridge target/release/print2mqtt --scale "$SCALE"
fi
