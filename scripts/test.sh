#!/usr/bin/env bash
# The project's test command: README's quick start names it and CI runs it
# through .ci/run. Installs what the integration tests run from Debian's
# packages when it is missing (Mosquitto and mosquitto_passwd: the tests
# start their own brokers on free loopback ports; curl and jq:
# examples/curl.sh is run against a real bridge), then runs every test.
# through .ci/run. Installs Mosquitto from Debian's packages when it is not
# installed (the integration tests start their own on free loopback ports)
# and Chromium with its WebDriver when missing (tests/browser.rs drives the
# status page in headless Chromium), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  missing+=(mosquitto mosquitto-clients)
fi
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v jq >/dev/null 2>&1 || missing+=(jq)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "scripts/test.sh: installing ${missing[*]} from Debian's packages for the integration tests"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "scripts/test.sh: installing Chromium and chromium-driver from Debian's packages for the browser test"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null
fi

cargo test "$@"
