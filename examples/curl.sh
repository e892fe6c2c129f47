#!/usr/bin/env bash
# Posts every recorded webhook sample to a running print2mqtt and prints each
# answer with its HTTP status:
#   - OctoEverywhere: tests/fixtures/octoeverywhere/*.json (all 16 event
#     types), in file order (started, complete, failed, ...);
#   - OctoPrint-Webhooks: the recordings in
#     tests/fixtures/octoprint-webhooks/*.jsonl (JSON, form, multipart with
#     snapshot, the default template), replayed with their method, query
#     string and Content-Type. Needs jq and base64 (Debian: apt install jq).
#
# Usage: examples/curl.sh [WEBHOOK_URL] [octoeverywhere|octoprint|all]
#   WEBHOOK_URL defaults to http://127.0.0.1:8080/webhook, the set to all.
#
# Watch the result in another terminal:
#   mosquitto_sub -t 'print2mqtt/#' -v
#
# The OctoEverywhere samples carry "SecretKey": "my-webhook-secret", the
# OctoPrint-Webhooks ones an apiSecret of their own. With auth.secret empty
# the bridge ignores both (loopback and private-network senders only); with
# a secret configured, the samples get 401 unless it matches.
#
# For a whole print in order, with a progress bar, use
#   print2mqtt simulate --url WEBHOOK_URL
set -euo pipefail

url="${1:-http://127.0.0.1:8080/webhook}"
which_set="${2:-all}"
fixtures="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/fixtures"

octoeverywhere() {
    for body in "$fixtures"/octoeverywhere/*.json; do
        printf '%-48s ' "$(basename "$body")"
        # Label the body as JSON: curl's default for --data is form encoding.
        curl --silent --show-error \
            --header 'Content-Type: application/json' \
            --data-binary "@$body" \
            --write-out ' [%{http_code}]\n' \
            "$url"
    done
}

octoprint() {
    if ! command -v jq >/dev/null; then
        echo "examples/curl.sh: the OctoPrint-Webhooks recordings need jq (apt install jq)" >&2
        return 1
    fi
    local body
    body="$(mktemp)"
    trap 'rm -f "$body"' RETURN
    for recording in "$fixtures"/octoprint-webhooks/*.jsonl; do
        # One line per webhook: seq, method, query, Content-Type, body
        # (base64), separated by US (0x1f): unlike a tab, it is not
        # whitespace to `read`, so empty fields stay in place.
        jq -r '[(.seq | tostring), .method, .query,
                ([.headers[] | select(.[0] | ascii_downcase == "content-type") | .[1]] | first // ""),
                .body_b64] | join("\u001f")' "$recording" |
        while IFS=$'\x1f' read -r seq method query content_type body_b64; do
            printf '%-48s ' "$(basename "$recording" .jsonl) #$seq"
            printf '%s' "$body_b64" | base64 -d >"$body"
            local target="$url"
            if [ -n "$query" ]; then target="$url?$query"; fi
            local args=(--silent --show-error --request "$method" --write-out ' [%{http_code}]\n')
            if [ -n "$content_type" ]; then args+=(--header "Content-Type: $content_type"); fi
            if [ -s "$body" ]; then args+=(--data-binary "@$body"); fi
            curl "${args[@]}" "$target"
        done
    done
}

case "$which_set" in
    octoeverywhere) octoeverywhere ;;
    octoprint) octoprint ;;
    all) octoeverywhere; octoprint ;;
    *) echo "usage: $0 [WEBHOOK_URL] [octoeverywhere|octoprint|all]" >&2; exit 2 ;;
esac
