#!/usr/bin/env bash
# Posts every recorded OctoEverywhere webhook in tests/fixtures/octoeverywhere/
# to a running print2mqtt, in file order (started, complete, failed, ...),
# and prints each answer with its HTTP status.
#
# Usage: examples/curl.sh [WEBHOOK_URL]
#   WEBHOOK_URL defaults to http://127.0.0.1:8080/webhook
#
# Watch the result in another terminal:
#   mosquitto_sub -t 'print2mqtt/#' -v
#
# The fixtures carry "SecretKey": "my-webhook-secret". With auth.secret empty
# the bridge ignores it (loopback and private-network senders only); with a
# secret configured, use that value (or set auth.secret to
# my-webhook-secret for this demo).
set -euo pipefail

url="${1:-http://127.0.0.1:8080/webhook}"
fixtures="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/fixtures/octoeverywhere"

for body in "$fixtures"/*.json; do
    printf '%-45s ' "$(basename "$body")"
    # Label the body as JSON: curl's default for --data is form encoding.
    # print2mqtt recognises a JSON body under that label too, but
    # /webhook/octoeverywhere and OctoEverywhere itself expect JSON.
    curl --silent --show-error \
        --header 'Content-Type: application/json' \
        --data-binary "@$body" \
        --write-out ' [%{http_code}]\n' \
        "$url"
done
