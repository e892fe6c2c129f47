#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for the given number of seconds
# (default 600), each starting from its seed corpus in fuzz/seeds/ (made from
# tests/fixtures by fuzz/make_seeds.py) plus what earlier runs found in
# fuzz/corpus/. A crash leaves its input in fuzz/artifacts/<target>/; the
# script goes on with the other targets and exits non-zero at the end.
#
#   scripts/fuzz.sh 600              # one target after the other
#   FUZZ_PARALLEL=1 scripts/fuzz.sh  # all targets at once (logs in fuzz/logs/)
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address); the stable
# toolchain accepts them with RUSTC_BOOTSTRAP=1, so no nightly is needed.
# The first build compiles everything with AddressSanitizer (minutes).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-600}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "scripts/fuzz.sh: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(pwd)/../target/fuzz}"
cargo fuzz build

run() {
  mkdir -p "corpus/$1"
  cargo fuzz run "$1" "corpus/$1" "seeds/$1" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
}

failed=()
if [ -n "${FUZZ_PARALLEL:-}" ]; then
  mkdir -p logs
  pids=()
  mapfile -t targets < <(cargo fuzz list)
  for target in "${targets[@]}"; do
    echo "scripts/fuzz.sh: $target for ${seconds}s (log: fuzz/logs/$target.log)"
    run "$target" >"logs/$target.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!targets[@]}"; do
    wait "${pids[$i]}" || failed+=("${targets[$i]}")
    tail -n 12 "logs/${targets[$i]}.log" | grep -E "stat::|Done" || true
  done
else
  for target in $(cargo fuzz list); do
    echo "scripts/fuzz.sh: $target for ${seconds}s"
    run "$target" || failed+=("$target")
  done
fi
if [ "${#failed[@]}" -gt 0 ]; then
  echo "scripts/fuzz.sh: crashes in ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "scripts/fuzz.sh: every target ran ${seconds}s without a crash"
