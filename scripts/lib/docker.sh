# shellcheck shell=bash
# Shared by the on-demand container checks (scripts/check-image.sh,
# check-addon.sh, check-fresh.sh; docs/packaging.md): a Docker engine, a
# Debian 12 base image made locally (no image registry is needed), a
# Mosquitto image on it, and clean-up on exit. Sourced, not run.
#
# Needs root (debootstrap, and dockerd when none is running). Installs
# Debian's docker.io and debootstrap when missing. Uses the engine the
# docker client reaches (DOCKER_HOST or the default socket); when none
# answers, starts a private dockerd for the run and stops it at exit.
#
# Settings (environment):
#   CHECK_MIRROR   Debian mirror for debootstrap (default: the first http(s)
#                  URI of this machine's apt sources, else deb.debian.org)
#   CHECK_REBUILD_BASE=1  make the base image again

CHECK_PREFIX="print2mqtt-check"
BASE_IMAGE_TAG="$CHECK_PREFIX/debian:bookworm"
MOSQUITTO_IMAGE_TAG="$CHECK_PREFIX/mosquitto:bookworm"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*"; }
step() { printf '\n== %s\n' "$*"; STEP_START=$SECONDS; }
took() { echo "   (${1:-step}: $((SECONDS - STEP_START)) s)"; }
die() { echo "error: $*" >&2; exit 1; }

_cleanups=()
# Runs at exit, last added first.
at_exit() { _cleanups+=("$*"); }
_run_cleanups() {
    local rc=$? i
    for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do eval "${_cleanups[i]}" || true; done
    exit "$rc"
}
trap _run_cleanups EXIT

need_root() {
    [ "$(id -u)" -eq 0 ] || die "$(basename "$0") needs root (debootstrap, docker): run it as root or with sudo"
}

install_missing() {
    local need=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
    done
    if [ "${#need[@]}" -gt 0 ]; then
        log "installing ${need[*]} from Debian's packages"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
}

# A Docker engine for this run.
docker_ready() {
    install_missing docker:docker.io dockerd:docker.io debootstrap:debootstrap
    if docker info >/dev/null 2>&1; then
        log "using the running Docker engine ($(docker version -f '{{.Server.Version}}'))"
        return
    fi
    local run=/run/$CHECK_PREFIX
    mkdir -p "$run"
    dockerd --host "unix://$run/docker.sock" --data-root "/var/lib/$CHECK_PREFIX-docker" \
        --exec-root "$run/exec" --pidfile "$run/dockerd.pid" >"$run/dockerd.log" 2>&1 &
    local pid=$!
    export DOCKER_HOST="unix://$run/docker.sock"
    at_exit "kill $pid; wait $pid 2>/dev/null"
    local _
    for _ in $(seq 1 100); do
        docker info >/dev/null 2>&1 && break
        kill -0 "$pid" 2>/dev/null || { cat "$run/dockerd.log"; die "dockerd exited"; }
        sleep 0.2
    done
    docker info >/dev/null 2>&1 || { tail "$run/dockerd.log"; die "dockerd did not answer"; }
    log "started a private dockerd (pid $pid, $DOCKER_HOST; stopped at exit)"
}

# `docker build` with BuildKit: buildx when the client has it, else the
# classic client's own BuildKit (Debian's docker.io 20.10 has it).
docker_build() {
    if docker buildx version >/dev/null 2>&1; then
        docker buildx build --load "$@"
    elif [ -x /usr/bin/docker ]; then
        DOCKER_BUILDKIT=1 /usr/bin/docker build "$@"
    else
        DOCKER_BUILDKIT=1 docker build "$@"
    fi
}

debian_mirror() {
    if [ -n "${CHECK_MIRROR:-}" ]; then echo "$CHECK_MIRROR"; return; fi
    local uri
    uri="$(grep -hoE '(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
        awk '{print $2}' | head -1)"
    echo "${uri:-http://deb.debian.org/debian}"
}

# Debian 12 (minbase + CA certificates), made with debootstrap and imported:
# the stand-in for both base images, whose registries are not reachable.
base_image() {
    if [ -z "${CHECK_REBUILD_BASE:-}" ] && docker image inspect "$BASE_IMAGE_TAG" >/dev/null 2>&1; then
        log "base image $BASE_IMAGE_TAG exists"
        return
    fi
    local dir="$ROOT/target/docker-base/bookworm" mirror
    if [ -n "${CHECK_REBUILD_BASE:-}" ] || [ ! -f "$dir.done" ]; then
        mirror="$(debian_mirror)"
        rm -rf "$dir" "$dir.done"
        mkdir -p "$(dirname "$dir")"
        log "debootstrap bookworm (minbase) from $mirror into target/docker-base/"
        debootstrap --variant=minbase --include=ca-certificates bookworm "$dir" "$mirror" \
            >"$ROOT/target/docker-base/debootstrap.log" 2>&1 ||
            { tail "$ROOT/target/docker-base/debootstrap.log"; die "debootstrap failed"; }
        rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
        touch "$dir.done"
    fi
    tar -C "$dir" -c . | docker import -c 'CMD ["/bin/bash"]' - "$BASE_IMAGE_TAG" >/dev/null
    log "imported $BASE_IMAGE_TAG ($(docker image inspect -f '{{.Size}}' "$BASE_IMAGE_TAG" | numfmt --to=iec))"
}

# Mosquitto from Debian's package on the base image, configured by a
# mounted /mosquitto/config/mosquitto.conf like the eclipse-mosquitto image.
mosquitto_image() {
    if docker image inspect "$MOSQUITTO_IMAGE_TAG" >/dev/null 2>&1; then return; fi
    log "building $MOSQUITTO_IMAGE_TAG"
    docker_build -q -t "$MOSQUITTO_IMAGE_TAG" --build-arg "BASE=$BASE_IMAGE_TAG" - >/dev/null <<'DOCKERFILE'
ARG BASE
FROM ${BASE}
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mosquitto mosquitto-clients \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o mosquitto -g mosquitto /mosquitto/data /mosquitto/config
CMD ["mosquitto", "-c", "/mosquitto/config/mosquitto.conf"]
DOCKERFILE
}

# The release binary for the image: CHECK_BINARY, or `cargo build --release
# --locked` here (the release profile), laid out in dist/<arch>/ as the
# Dockerfile's `prebuilt` stage reads it (removed at exit).
release_binary() {
    local arch bin
    arch="$(dpkg --print-architecture)"
    if [ -n "${CHECK_BINARY:-}" ]; then
        bin="$CHECK_BINARY"
    else
        cargo build --release --locked
        bin="target/release/print2mqtt"
    fi
    "$bin" --version
    echo "   $(stat -c %s "$bin" | numfmt --to=iec) $bin"
    rm -rf "$ROOT/dist/$arch"
    install -D -m 0755 "$bin" "$ROOT/dist/$arch/print2mqtt"
    install -d -m 0755 "$ROOT/dist/$arch/data"
    at_exit "rm -rf '$ROOT/dist/$arch'; rmdir '$ROOT/dist' 2>/dev/null"
}

# Builds docker/Dockerfile's runtime stage (the release's) as image $1, with
# the binary release_binary laid out and the local base image for both
# base images.
print2mqtt_image() {
    (cd "$ROOT" && docker_build -q -f docker/Dockerfile --target runtime \
        --build-arg BINARY=prebuilt \
        --build-arg "BUILD_IMAGE=$BASE_IMAGE_TAG" \
        --build-arg "RUNTIME_IMAGE=$BASE_IMAGE_TAG" \
        -t "$1" .)
    docker history --format '{{.Size}}\t{{.CreatedBy}}' "$1" | awk -F'\t' '$1 != "0B"' | cut -c1-110 |
        sed 's/^/   layer /; s/\t$/\t(the base image)/'
    echo "   image: $(docker image inspect -f '{{.Size}}' "$1" | numfmt --to=iec) in all," \
        "$(docker image inspect -f '{{.Size}}' "$BASE_IMAGE_TAG" | numfmt --to=iec) of it the base stand-in"
}

# Removes a container, network or volume left by an earlier run.
docker_rm() {
    local kind=$1; shift
    case "$kind" in
        container) docker rm -f "$@" >/dev/null 2>&1 || true ;;
        network) docker network rm "$@" >/dev/null 2>&1 || true ;;
        volume) docker volume rm -f "$@" >/dev/null 2>&1 || true ;;
    esac
}

# Waits up to $2 seconds for command $3... to succeed; $1 says what for.
wait_for() {
    local what=$1 secs=$2 start=$SECONDS
    shift 2
    until "$@" >/dev/null 2>&1; do
        [ $((SECONDS - start)) -lt "$secs" ] || die "timed out after ${secs}s waiting for $what"
        sleep 0.5
    done
}

# The retained message of topic $2 on the broker container $1 ("" if none).
retained() {
    docker exec "$1" mosquitto_sub -h 127.0.0.1 -t "$2" -C 1 -W 3 --retained-only 2>/dev/null || true
}
