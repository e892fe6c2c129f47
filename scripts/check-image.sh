#!/usr/bin/env bash
# Builds docker/Dockerfile's image and runs it for real (docs/packaging.md):
#   1. the release binary, built on this machine (`cargo build --release
#      --locked`, the release profile: fat LTO, several minutes), goes into
#      dist/<arch>/ and from there into the Dockerfile's runtime stage, the
#      one the release workflow uses (BINARY=prebuilt, --target runtime);
#      both base images are a Debian 12 made here with debootstrap;
#   2. the image runs beside a Mosquitto container (configured by
#      docker/mosquitto/mosquitto.conf, the compose file's) on a docker
#      network; a webhook posted to the published port becomes retained
#      topics and a discovery config on the broker;
#   3. Docker's own HEALTHCHECK (`print2mqtt healthcheck`, every 30 s)
#      reports the container healthy;
#   4. the bridge runs as uid 65532, not root;
#   5. with the broker stopped, a webhook is accepted into the outbox on the
#      /data volume; the container is removed and a new one created on the
#      same volume; once the broker is back, the new container delivers it.
#
# Usage (root; installs docker.io and debootstrap when missing):
#   scripts/check-image.sh
# Environment: CHECK_BINARY=path uses that binary instead of building one;
# the release profile can be lightened for a quick local run with
#   CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
# Leaves the images print2mqtt-check/* behind (the base image is reused).
set -euo pipefail
# shellcheck source=scripts/lib/docker.sh
source "$(dirname "$0")/lib/docker.sh"
cd "$ROOT"
need_root
started=$SECONDS
image="$CHECK_PREFIX/print2mqtt:local"
net="$CHECK_PREFIX-net"
broker="$CHECK_PREFIX-mosquitto"
bridge="$CHECK_PREFIX-bridge"
volume="$CHECK_PREFIX-data"
secret="image-check-$RANDOM$RANDOM"
printer="imagecheck"

step "release binary"
release_binary
took build

step "Docker engine, base images"
docker_ready
base_image
mosquitto_image
took setup

step "docker build (BINARY=prebuilt, target runtime, base $BASE_IMAGE_TAG)"
print2mqtt_image "$image"
took build

cleanup() {
    docker_rm container "$bridge" "$broker"
    docker_rm volume "$volume"
    docker_rm network "$net"
}
cleanup
at_exit cleanup
docker network create "$net" >/dev/null
docker volume create "$volume" >/dev/null

broker_up() {
    # shellcheck disable=SC2016 # $SYS is a topic, not a variable
    wait_for "$1" 20 docker exec "$broker" mosquitto_sub -h 127.0.0.1 -t '$SYS/broker/version' -C 1 -W 1
}
start_broker() {
    docker run -d --name "$broker" --network "$net" --network-alias mosquitto \
        -v "$ROOT/docker/mosquitto/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro" \
        "$MOSQUITTO_IMAGE_TAG" >/dev/null
    broker_up Mosquitto
}
start_bridge() {
    docker run -d --name "$bridge" --network "$net" -p 127.0.0.1::8080 \
        -v "$volume:/data" \
        -e PRINT2MQTT_MQTT__URL=mqtt://mosquitto:1883 \
        -e "PRINT2MQTT_AUTH__SECRET=$secret" \
        "$image" >/dev/null
    addr="$(docker port "$bridge" 8080/tcp | head -1)"
    wait_for "the bridge's /healthz" 20 curl -fsS "http://$addr/healthz"
}
webhook() { # event type, progress
    curl -fsS -H 'Content-Type: application/json' --data-binary @- "http://$addr/webhook" <<JSON
{"PrinterId":"$printer","PrinterName":"Image check","SecretKey":"$secret","EventType":$1,"Progress":$2,"FileName":"cube.gcode","TimeRemainingSec":600}
JSON
    echo
}
expect_retained() { # topic, value
    local got
    for _ in $(seq 1 40); do
        got="$(retained "$broker" "$1")"
        [ "$got" = "$2" ] && { echo "   retained $1 = $got"; return; }
        sleep 0.5
    done
    docker logs "$bridge" 2>&1 | tail -20
    die "retained $1 is '$got', want '$2'"
}

step "run: Mosquitto + the image, a webhook, the retained topics"
start_broker
start_bridge
echo "   bridge on http://$addr (published 8080), broker mosquitto:1883 on network $net"
wait_for "the bridge's /readyz (connected to the broker)" 30 curl -fsS "http://$addr/readyz"
webhook 6 42
expect_retained "print2mqtt/$printer/progress" 42
expect_retained "print2mqtt/$printer/state" printing
config="$(docker exec "$broker" mosquitto_sub -h 127.0.0.1 -t 'homeassistant/#' -W 3 --retained-only -v 2>/dev/null |
    grep -c "$printer" || true)"
echo "   $config Home Assistant discovery configs for $printer retained"
[ "$config" -gt 0 ] || die "no discovery config"
took run

step "HEALTHCHECK"
echo "   $(docker inspect -f '{{json .Config.Healthcheck}}' "$bridge")"
wait_for "Docker's health status 'healthy' (first check after the 30 s interval)" 90 \
    sh -c "[ \"\$(docker inspect -f '{{.State.Health.Status}}' $bridge)\" = healthy ]"
docker inspect -f '   {{.State.Health.Status}}: {{range .State.Health.Log}}exit {{.ExitCode}} {{.Output}}{{end}}' "$bridge" | head -3
took healthcheck

step "not root"
user="$(docker inspect -f '{{.Config.User}}' "$bridge")"
pid="$(docker inspect -f '{{.State.Pid}}' "$bridge")"
uids="$(awk '/^Uid:/{print $2, $3, $4, $5}' "/proc/$pid/status")"
echo "   image USER $user; the bridge process (host pid $pid) has uids: $uids"
if [ "$user" != "65532:65532" ] || [ "$uids" != "65532 65532 65532 65532" ]; then
    die "the bridge runs as $uids"
fi
echo "   /data: $(docker run --rm --entrypoint stat -v "$volume:/data" "$image" -c '%u:%g %A' /data)"

step "outbox on /data survives removing the container while the broker is down"
docker stop "$broker" >/dev/null
wait_for "the bridge to notice the broker is gone (/readyz 503)" 30 sh -c "! curl -fsS http://$addr/readyz"
webhook 6 77
depth="$(curl -fsS "http://$addr/metrics" | awk '/^print2mqtt_outbox_depth /{print $2}')"
echo "   outbox depth with the broker down: ${depth:-?}"
t0=$SECONDS
docker stop "$bridge" >/dev/null
code="$(docker inspect -f '{{.State.ExitCode}}' "$bridge")"
echo "   docker stop: $((SECONDS - t0)) s, exit code $code$([ "$code" = 137 ] &&
    echo " (killed after docker's 10 s; the outbox is durable either way)")"
docker rm "$bridge" >/dev/null
echo "   container removed; the volume $volume stays"
start_bridge
echo "   new container $(docker inspect -f '{{.Id}}' "$bridge" | cut -c1-12) on the same volume"
docker start "$broker" >/dev/null
broker_up "Mosquitto again"
expect_retained "print2mqtt/$printer/progress" 77
docker logs "$bridge" 2>&1 | grep -iE "outbox|restor|backlog" | head -3 | cut -c1-160 || true
took outbox

echo
echo "check-image: all checks passed in $((SECONDS - started)) s"
