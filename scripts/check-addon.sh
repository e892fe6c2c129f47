#!/usr/bin/env bash
# Runs the Home Assistant add-on's container the way the Supervisor runs it
# (docs/packaging.md):
#   - the add-on image is built from docker/homeassistant-addon/Dockerfile
#     on the print2mqtt image that scripts/check-image.sh builds (the host's
#     release binary in the release's runtime stage, local Debian 12 base);
#   - on a docker network with the Supervisor's subnet (172.30.32.0/23), with
#     the Supervisor's container settings: /data with the options.json the
#     Supervisor writes, /config from `map: addon_config` read-only,
#     SUPERVISOR_TOKEN, `supervisor` resolving to 172.30.32.2, docker's init,
#     and the webhook port of config.yaml's `ports` published;
#   - a fake Supervisor at 172.30.32.2 answers GET /services/mqtt (only with
#     the add-on's token) with the credentials of a Mosquitto that requires
#     them (like the Mosquitto add-on, alias core-mosquitto);
#   - a webhook on the published port becomes retained topics;
#   - the ingress port answers the Supervisor's proxy address (the status
#     page under X-Ingress-Path) and refuses every other address: another
#     container on the network, the host through the network's gateway; it
#     is not published, and it serves no webhooks.
#
# Usage (root; installs docker.io and debootstrap when missing):
#   scripts/check-addon.sh
# Environment: as scripts/check-image.sh (CHECK_BINARY, CARGO_PROFILE_*).
set -euo pipefail
# shellcheck source=scripts/lib/docker.sh
source "$(dirname "$0")/lib/docker.sh"
cd "$ROOT"
need_root
started=$SECONDS
image="$CHECK_PREFIX/print2mqtt:local"
addon_image="$CHECK_PREFIX/amd64-addon-print2mqtt:local"
python_image="$CHECK_PREFIX/python:bookworm"
net="$CHECK_PREFIX-hassio"
supervisor="$CHECK_PREFIX-supervisor"
broker="$CHECK_PREFIX-core-mosquitto"
other="$CHECK_PREFIX-other"
addon="addon_local_print2mqtt"
token="supervisor-token-$RANDOM$RANDOM"
mqtt_user="addons"
mqtt_pass="mqtt-pass-$RANDOM"
secret="addon-secret-$RANDOM"
printer="addoncheck"
work="$(mktemp -d)"
at_exit "rm -rf '$work'"

step "release binary"
release_binary
took build

step "Docker engine, base images"
docker_ready
base_image
mosquitto_image
if ! docker image inspect "$python_image" >/dev/null 2>&1; then
    docker_build -q -t "$python_image" --build-arg "BASE=$BASE_IMAGE_TAG" - >/dev/null <<'DOCKERFILE'
ARG BASE
FROM ${BASE}
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 curl \
    && rm -rf /var/lib/apt/lists/*
DOCKERFILE
fi
took setup

step "images: print2mqtt, then the add-on on it"
print2mqtt_image "$image"
docker_build -q -f docker/homeassistant-addon/Dockerfile \
    --build-arg "BASE_IMAGE=$image" --build-arg BUILD_ARCH=amd64 \
    -t "$addon_image" docker/homeassistant-addon >/dev/null
docker inspect -f '   add-on image: user {{.Config.User}}, labels {{json .Config.Labels}}' "$addon_image"
took build

cleanup() {
    docker_rm container "$addon" "$supervisor" "$broker" "$other"
    docker_rm network "$net"
}
cleanup
at_exit cleanup

step "the Supervisor's network, Mosquitto with credentials, a fake Supervisor"
docker network create --subnet 172.30.32.0/23 --ip-range 172.30.33.0/24 --gateway 172.30.32.1 "$net" >/dev/null
mkdir -p "$work/mosquitto" "$work/supervisor" "$work/data" "$work/addon_config"
cat >"$work/mosquitto/mosquitto.conf" <<CONF
listener 1883
allow_anonymous false
password_file /mosquitto/passwd
CONF
docker run -d --name "$broker" --network "$net" --network-alias core-mosquitto \
    -v "$work/mosquitto:/mosquitto/config:ro" "$MOSQUITTO_IMAGE_TAG" sh -c \
    "mosquitto_passwd -b -c /mosquitto/passwd '$mqtt_user' '$mqtt_pass' && chown mosquitto /mosquitto/passwd \
     && exec mosquitto -c /mosquitto/config/mosquitto.conf" >/dev/null
# shellcheck disable=SC2016 # $SYS is a topic
wait_for "Mosquitto" 20 docker exec "$broker" mosquitto_sub -h 127.0.0.1 -u "$mqtt_user" -P "$mqtt_pass" \
    -t '$SYS/broker/version' -C 1 -W 1
if docker exec "$broker" mosquitto_sub -h 127.0.0.1 -t 'x' -C 1 -W 1 >/dev/null 2>&1; then
    die "Mosquitto lets anonymous clients in"
fi
cat >"$work/supervisor/supervisor.py" <<'PY'
# The Supervisor's services API, as far as the add-on uses it.
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Supervisor(BaseHTTPRequestHandler):
    def do_GET(self):
        auth = self.headers.get("Authorization", "")
        if auth != "Bearer " + os.environ["TOKEN"]:
            status, body = 401, {"result": "error", "message": "Unauthorized"}
        elif self.path == "/services/mqtt":
            status, body = 200, {"result": "ok", "data": {
                "addon": "core_mosquitto", "host": "core-mosquitto", "port": 1883,
                "ssl": False, "protocol": "3.1.1",
                "username": os.environ["MQTT_USER"], "password": os.environ["MQTT_PASS"]}}
        else:
            status, body = 404, {"result": "error", "message": "not found"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print("supervisor:", self.address_string(), fmt % args,
              "token ok" if self.headers.get("Authorization") == "Bearer " + os.environ["TOKEN"] else "bad token",
              flush=True)

HTTPServer(("0.0.0.0", 80), Supervisor).serve_forever()
PY
docker run -d --name "$supervisor" --network "$net" --ip 172.30.32.2 --network-alias supervisor \
    -e "TOKEN=$token" -e "MQTT_USER=$mqtt_user" -e "MQTT_PASS=$mqtt_pass" \
    -v "$work/supervisor:/srv:ro" "$python_image" python3 /srv/supervisor.py >/dev/null
wait_for "the fake Supervisor" 20 docker exec "$supervisor" curl -fsS -H "Authorization: Bearer $token" \
    http://127.0.0.1/services/mqtt
echo "   network $net 172.30.32.0/23 (containers from 172.30.33.0/24, as the Supervisor sets it up); Supervisor 172.30.32.2; Mosquitto (password) core-mosquitto:1883"
took setup

step "the add-on container, as the Supervisor starts it"
# options.json as the Supervisor writes it: config.yaml's options (empty
# sections) with what the user filled in.
cat >"$work/data/options.json" <<JSON
{"mqtt": {}, "auth": {"secret": "$secret"}, "http": {}, "storage": {}, "homeassistant": {}, "octoeverywhere": {}}
JSON
webhook_port="$(sed -n '/^ports:/,/^[a-z]/s#^  8080/tcp: *##p' docker/homeassistant-addon/config.yaml)"
ingress_port="$(sed -n 's/^ingress_port: *//p' docker/homeassistant-addon/config.yaml)"
echo "   config.yaml: webhook port 8080/tcp (host $webhook_port; published here on a free host port), ingress_port $ingress_port"
docker run -d --name "$addon" --hostname local-print2mqtt --network "$net" --init \
    --add-host "supervisor:172.30.32.2" --add-host "hassio:172.30.32.2" \
    -e "SUPERVISOR_TOKEN=$token" -e "HASSIO_TOKEN=$token" -e TZ=Etc/UTC \
    -v "$work/data:/data" -v "$work/addon_config:/config:ro" \
    -p "127.0.0.1::8080" \
    "$addon_image" >/dev/null
addr="$(docker port "$addon" 8080/tcp | head -1)"
addon_ip="$(docker inspect -f "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}" "$addon")"
wait_for "the add-on's /readyz (connected to the Supervisor's broker)" 30 curl -fsS "http://$addr/readyz"
docker logs "$addon" 2>&1 | grep -E "Supervisor|options|Configuration" | cut -c1-200 | head -4
docker logs "$supervisor" 2>&1 | head -2
docker exec "$addon" /usr/local/bin/print2mqtt check-config 2>/dev/null | grep -E '^(ingress_listen|data_dir|secret) ' || true
echo "   published ports: $(docker port "$addon" | tr '\n' ' ')"
[ "$(docker port "$addon" | wc -l)" -eq 1 ] || die "only the webhook port should be published"
took start

step "a webhook on the published port"
curl -fsS -H 'Content-Type: application/json' "http://$addr/webhook" --data-binary @- <<JSON
{"PrinterId":"$printer","PrinterName":"Add-on check","SecretKey":"$secret","EventType":6,"Progress":55,"FileName":"cube.gcode","TimeRemainingSec":600}
JSON
echo
status="$(curl -sS -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' "http://$addr/webhook" \
    --data '{"PrinterId":"x","EventType":6,"SecretKey":"wrong"}')"
echo "   with a wrong secret: HTTP $status"
[ "$status" = 401 ] || die "a wrong secret got $status"
for _ in $(seq 1 40); do
    got="$(docker exec "$broker" mosquitto_sub -h 127.0.0.1 -u "$mqtt_user" -P "$mqtt_pass" \
        -t "print2mqtt/$printer/progress" -C 1 -W 3 --retained-only 2>/dev/null || true)"
    [ "$got" = 55 ] && break
    sleep 0.5
done
[ "$got" = 55 ] || { docker logs "$addon" | tail; die "retained progress is '$got'"; }
echo "   retained print2mqtt/$printer/progress = $got (on the Supervisor's broker, with its credentials)"
find "$work/data" -mindepth 1 -maxdepth 1 -printf '   /data/%f (owner %u)\n'
took webhook

step "ingress: only 172.30.32.2"
from() { # container, path, extra curl args...
    local c=$1 p=$2
    shift 2
    docker exec "$c" curl -sS -o /dev/null -w '%{http_code}' "$@" "http://$addon_ip:$ingress_port$p" || echo failed
}
page="$(docker exec "$supervisor" curl -sS -i -H 'X-Ingress-Path: /api/hassio_ingress/abc' "http://$addon_ip:$ingress_port/")"
grep -q '<base href="/api/hassio_ingress/abc/">' <<<"$page" || { echo "$page" | head -20; die "no status page under the ingress path"; }
echo "   Supervisor (172.30.32.2) GET / : 200, the status page under X-Ingress-Path"
s="$(from "$supervisor" /api/bridge)"; echo "   Supervisor (172.30.32.2) GET /api/bridge: $s"; [ "$s" = 200 ] || die "want 200"
s="$(from "$supervisor" /webhook -H 'Content-Type: application/json' --data '{}')"
echo "   Supervisor (172.30.32.2) POST /webhook on the ingress port: $s"; [ "$s" = 404 ] || die "want 404"
docker run -d --name "$other" --network "$net" --ip 172.30.32.50 "$python_image" sleep 120 >/dev/null
s="$(from "$other" /)"; echo "   another container (172.30.32.50) GET /: $s"; [ "$s" = 403 ] || die "want 403"
s="$(from "$other" /api/bridge -H 'X-Forwarded-For: 172.30.32.2')"
echo "   another container claiming X-Forwarded-For 172.30.32.2: $s"; [ "$s" = 403 ] || die "want 403"
s="$(curl -sS -o /dev/null -w '%{http_code}' "http://$addon_ip:$ingress_port/" || echo failed)"
echo "   this host (through the gateway 172.30.32.1) GET /: $s"; [ "$s" = 403 ] || die "want 403"
took ingress

echo
echo "check-addon: all checks passed in $((SECONDS - started)) s"
