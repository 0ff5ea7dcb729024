#!/usr/bin/env bash
# Installs what portsyncd needs to build, run and test, and says what it installs.
# Usage: install-deps.sh APT_PACKAGE... -- PYTHON_PACKAGE...
# The Python packages go to the interpreter $PYTHON (default: the python3 on PATH).
set -euo pipefail
python=${PYTHON:-python3}
apt_wanted=() py_wanted=() side=apt
for arg in "$@"; do
    if [ "$arg" = "--" ]; then side=py; continue; fi
    if [ $side = apt ]; then apt_wanted+=("$arg"); else py_wanted+=("$arg"); fi
done

missing=()
for package in "${apt_wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
        exit 1
    fi
    echo "install-deps: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

py_missing=()
for package in "${py_wanted[@]}"; do
    "$python" -c "import ${package//-/_}" 2>/dev/null || py_missing+=("$package")  # module names use _
done
if [ ${#py_missing[@]} -gt 0 ]; then
    echo "install-deps: installing Python packages for $python: ${py_missing[*]}"
    "$python" -m pip install -q "${py_missing[@]}" 2>/dev/null \
        || "$python" -m pip install -q --break-system-packages "${py_missing[@]}"
fi
