#!/usr/bin/env bash
# A fresh machine, as a new user has it (docs/packaging.md): Debian 12 made
# with debootstrap, plus what the README's prerequisites name (a C compiler;
# the Rust toolchain is this machine's rustup toolchain, mounted read-only),
# and the committed tree (git archive HEAD, no target/). In it, as root,
# the README's two commands:
#   1. `cargo run --release` (build and run): the bridge answers /readyz on
#      its embedded broker and accepts a webhook posted from outside;
#   2. `bash scripts/test.sh` (the test command; CI=true, so nothing may be
#      skipped): installs its Debian packages, runs every test;
# then the quick start once more, which proves that test.sh left no broker
# service on port 1883.
#
# Usage (root; installs docker.io and debootstrap when missing; reaches
# Debian's mirror and crates.io; takes a release and a test build, 20-30
# minutes on 2 cores):
#   scripts/check-fresh.sh
set -euo pipefail
# shellcheck source=scripts/lib/docker.sh
source "$(dirname "$0")/lib/docker.sh"
cd "$ROOT"
need_root
started=$SECONDS
fresh_image="$CHECK_PREFIX/fresh:bookworm"
box="$CHECK_PREFIX-fresh"
rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
cargo_bin="$(dirname "$(command -v cargo)")"
work="$(mktemp -d)"
at_exit "rm -rf '$work'"

step "Docker engine, base image, the fresh machine"
docker_ready
base_image
# The machine's own extra CA certificates (a TLS-inspecting proxy's, say)
# go in too, so that the box reaches crates.io as this machine does.
mkdir -p "$work/ctx/ca"
cp /usr/local/share/ca-certificates/*.crt "$work/ctx/ca/" 2>/dev/null || true
cat >"$work/ctx/Dockerfile" <<'DOCKERFILE'
ARG BASE
FROM ${BASE}
# The README's prerequisites besides rustup: a C compiler (and its libc).
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null
DOCKERFILE
docker_build -q -t "$fresh_image" --build-arg "BASE=$BASE_IMAGE_TAG" "$work/ctx" >/dev/null
echo "   $fresh_image: Debian 12 minbase, gcc, libc6-dev, $(find "$work/ctx/ca" -name '*.crt' | wc -l) local CA certificate(s)"
git -C "$ROOT" archive --format=tar --prefix=src/ HEAD | tar -C "$work" -xf -
echo "   $(git -C "$ROOT" log -1 --format='%h %s' | cut -c1-100)"
echo "   toolchain: $("$cargo_bin/rustc" --version) from $rustup_home (read-only)"
docker_rm container "$box"
at_exit "docker_rm container $box"
# target/ on a tmpfs (CHECK_FRESH_TMPFS, default 8g; empty: on disk next to
# the sources): the release and test builds take ~5 GB that a shared disk
# may not have.
tmpfs=()
if [ -n "${CHECK_FRESH_TMPFS-8g}" ]; then
    tmpfs=(--tmpfs "/src/target:rw,exec,size=${CHECK_FRESH_TMPFS-8g}")
fi
# CAP_SYS_ADMIN: root on a machine may mount, and tests/delivery.rs's
# full-disk test mounts a small tmpfs.
docker run -d --name "$box" --init "${tmpfs[@]}" --cap-add SYS_ADMIN \
    -v "$rustup_home:/root/.rustup:ro" -v "$cargo_bin:/root/.cargo/bin:ro" \
    -v "$work/src:/src" -w /src \
    -e PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    "$fresh_image" sleep infinity >/dev/null
ip="$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$box")"
in_box() { docker exec "$box" bash -c "$*"; }
in_box 'cc --version | head -1; cargo --version; command -v mosquitto chromium curl jq || echo "(no mosquitto, chromium, curl or jq yet)"'
took setup

# Starts `cargo run --release` in the box, waits until it is ready, posts a
# webhook from this host, stops it.
quick_start() {
    docker exec "$box" bash -c 'cargo run --release >/tmp/run.log 2>&1' &
    local client=$! t0=$SECONDS
    until curl -fsS "http://$ip:8080/readyz" >/dev/null 2>&1; do
        if ! kill -0 "$client" 2>/dev/null; then
            in_box 'tail -20 /tmp/run.log'
            die "cargo run --release stopped"
        fi
        [ $((SECONDS - t0)) -lt 1800 ] || die "not ready after 30 minutes"
        sleep 2
    done
    in_box 'grep -E "Finished|Embedded MQTT broker started|Listening" /tmp/run.log | cut -c1-160'
    curl -fsS -H 'Content-Type: application/json' "http://$ip:8080/webhook" \
        --data '{"PrinterId":"fresh","PrinterName":"Fresh machine","EventType":6,"Progress":33}'
    echo
    curl -fsS "http://$ip:8080/api/printers" | head -c 300
    echo
    # shellcheck disable=SC2016 # expanded in the box
    in_box 'kill -TERM $(pidof print2mqtt)'
    wait "$client" || true
    echo "   ready $((SECONDS - t0)) s after \`cargo run --release\`"
}

step "README command 1: cargo run --release (build, then run)"
quick_start
took "build and run"

step "README command 2: bash scripts/test.sh (CI=true, CARGO_INCREMENTAL=0, line tables only)"
t0=$SECONDS
log="$ROOT/target/check-fresh-test.log"
# Without incremental caches and with line tables only, the test build takes
# about half the disk (a full one is ~8 GB); the tests are the same.
if ! docker exec -e CI=true -e CARGO_INCREMENTAL=0 -e CARGO_PROFILE_DEV_DEBUG=line-tables-only \
    "$box" bash -c 'bash scripts/test.sh 2>&1' >"$log"; then
    grep -E "^test .*FAILED|panicked|^error|failures:|test result: FAILED" "$log" | head -40 || true
    tail -15 "$log"
    die "scripts/test.sh failed (log: target/check-fresh-test.log)"
fi
grep -E "^scripts/test.sh:" "$log" || true
awk '/^test result:/{p+=$4; f+=$6; i+=$8} END{print "   " p " passed, " f " failed, " i " ignored in all"}' "$log"
if grep -q SKIPPED "$log"; then die "a test was skipped"; fi
echo "   scripts/test.sh: $((SECONDS - t0)) s (log: target/check-fresh-test.log); the box's target/: $(in_box 'du -sh /src/target' | cut -f1)"
took test

step "port 1883 after scripts/test.sh installed mosquitto"
# /proc/net/tcp{,6}: local port 075B (1883) in state 0A (LISTEN).
if in_box "grep -qiE ':075B [0-9A-F]+:0000 0A' /proc/net/tcp /proc/net/tcp6"; then
    die "something listens on 1883 after scripts/test.sh"
fi
echo "   nothing listens on 1883; $(in_box 'service mosquitto status 2>&1 | head -1' || true)"
quick_start
took "quick start again"

echo
echo "check-fresh: the README's commands pass on a fresh Debian 12 in $((SECONDS - started)) s"
