#!/usr/bin/env bash
# The project's test command: README's quick start names it and CI runs it
# through .ci/run. Installs from Debian's packages what the integration
# tests run when it is missing, then runs every test:
#   - mosquitto and mosquitto-clients: the tests start their own brokers on
#     free loopback ports. The package also starts a broker service on port
#     1883, where the quick start's embedded broker listens: when this script
#     installed it, it stops and disables that service again.
#   - curl and jq: examples/curl.sh is run against a real bridge.
#   - chromium and chromium-driver: tests/it/browser.rs drives the status page
#     in headless Chromium.
#   - nats-server and haproxy: tests/topology/ (jetstream.rs, scale_out.rs)
#     run three NATS nodes (JetStream, MQTT) and HAProxy on free loopback
#     ports (docs/scale-out.md); services the packages start are stopped and
#     disabled again.
# Installing needs root: run it as root or as a user with sudo. Arguments go
# to `cargo test` (e.g. `bash scripts/test.sh --test it browser::`).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
new_mosquitto=""
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  missing+=(mosquitto mosquitto-clients)
  new_mosquitto=yes
fi
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v jq >/dev/null 2>&1 || missing+=(jq)
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  missing+=(chromium chromium-driver)
fi

new_services=()
for pkg in nats-server haproxy; do
  if ! command -v "$pkg" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$pkg" ]; then
    missing+=("$pkg")
    new_services+=("$pkg")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "scripts/test.sh: the tests need ${missing[*]} from Debian's packages, and" >&2
    echo "installing them needs root, but this is not root and sudo is not installed." >&2
    echo "Run it as root, or install them first: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "scripts/test.sh: the tests need ${missing[*]} (Debian package names)," >&2
    echo "and there is no apt-get here to install them: install them yourself." >&2
    exit 1
  fi
  echo "scripts/test.sh: installing ${missing[*]} from Debian's packages for the integration tests${as_root[*]:+ (with sudo)}"
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  if [ -n "$new_mosquitto" ]; then
    # The package enabled and started a broker on 1883; the tests start
    # their own, and the quick start's embedded broker wants that port.
    if [ -d /run/systemd/system ]; then
      "${as_root[@]}" systemctl disable --now --quiet mosquitto.service 2>/dev/null || true
    else
      "${as_root[@]}" service mosquitto stop >/dev/null 2>&1 || true
      "${as_root[@]}" update-rc.d mosquitto disable >/dev/null 2>&1 || true
    fi
    # /proc/net/tcp{,6}: local port 075B (1883) in state 0A (LISTEN).
    if grep -qiE ':075B [0-9A-F]+:0000 0A' /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
      echo "scripts/test.sh: warning: something still listens on port 1883, where the quick start's" \
        "embedded broker listens: stop it (sudo systemctl disable --now mosquitto)" >&2
    else
      echo "scripts/test.sh: stopped and disabled the mosquitto service the package started: port 1883 is free"
    fi
  fi
  for service in "${new_services[@]}"; do
    # The tests start their own; a packaged service would hold 4222/80.
    if [ -d /run/systemd/system ]; then
      "${as_root[@]}" systemctl disable --now --quiet "$service.service" 2>/dev/null || true
    else
      "${as_root[@]}" service "$service" stop >/dev/null 2>&1 || true
      "${as_root[@]}" update-rc.d "$service" disable >/dev/null 2>&1 || true
    fi
  done
fi

cargo test "$@"
