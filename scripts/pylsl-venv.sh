#!/usr/bin/env bash
# pylsl from PyPI in a venv of its own (cached under ~/.cache/hindsight), for the LSL
# interop test (tests/pylsl.rs): an independent LSL client, with the liblsl its wheel
# carries, reading hindsight's streams as a lab's Python script would. Prints the venv's
# python on its last line; exit 2 when it cannot be made here.
#   scripts/pylsl-venv.sh
set -euo pipefail
PYLSL_VERSION=1.18.6
venv="${XDG_CACHE_HOME:-$HOME/.cache}/hindsight/pylsl-$PYLSL_VERSION"
if [ -f "$venv/.complete" ]; then
  echo "$venv/bin/python"
  exit 0
fi
fail() { echo "pylsl-venv: $*" >&2; exit 2; }
command -v python3 >/dev/null || fail "python3 is missing"
rm -rf "$venv"
python3 -m venv "$venv" >&2 || fail "python3 -m venv failed (apt-get install python3-venv)"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "pylsl==$PYLSL_VERSION" >&2 \
  || fail "pip could not install pylsl $PYLSL_VERSION"
v=$("$venv/bin/python" -c 'import pylsl; print(pylsl.library_version())') \
  || fail "pylsl does not load (its wheel carries liblsl for x86_64 only)"
echo "pylsl-venv: pylsl $PYLSL_VERSION with liblsl $v in $venv" >&2
touch "$venv/.complete"
echo "$venv/bin/python"
