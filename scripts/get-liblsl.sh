#!/usr/bin/env bash
# A current liblsl for hindsight, from a package registry: the shared liblsl that pylsl's
# wheel on PyPI carries (pylsl 1.18.6: liblsl 1.18.0, built for x86_64 with glibc >= 2.35;
# pylsl's other wheel carries none). The `lsl` crate bundles liblsl 1.13.1 (2020), whose
# sending threads poll every millisecond for each connected inlet (about a thousand
# wakeups a second per inlet) and which lacks years of fixes (README, "LSL").
#
# Puts the library under ~/.cache/hindsight/liblsl/<version>/lib and prints that prefix on
# its last line. The prefix holds:
#   env.sh      HINDSIGHT_RPATH, the run path build.rs gives what is built against it,
#               and LD_LIBRARY_PATH
#   cargo.toml  a `links = "lsl"` override for cargo (`cargo --config <prefix>/cargo.toml`):
#               lsl-sys then links this library instead of building 1.13 from source
# A later run only prints the prefix.
#
# Where no such library can be had (another architecture, an older glibc, no registry),
# it says why and exits 2; callers then build with the bundled liblsl 1.13.
#   scripts/get-liblsl.sh
set -euo pipefail

PYLSL_VERSION=1.18.6
LIBLSL_VERSION=1.18.0
PLATFORM=manylinux_2_35_x86_64

cache="${XDG_CACHE_HOME:-$HOME/.cache}/hindsight/liblsl"
prefix="$cache/$LIBLSL_VERSION"

none() {
  echo "get-liblsl: no current liblsl here: $*" >&2
  echo "get-liblsl: hindsight builds with the liblsl 1.13.1 the lsl crate bundles" >&2
  exit 2
}

if [ -f "$prefix/cargo.toml" ] && grep -q HINDSIGHT_RPATH "$prefix/env.sh" 2>/dev/null; then
  echo "$prefix"
  exit 0
fi

arch=$(uname -m)
[ "$arch" = x86_64 ] || none "pylsl's wheels carry liblsl for x86_64 only (this machine: $arch)"
glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
[ -n "$glibc" ] || none "not a glibc system"
if [ "$(printf '%s\n2.35\n' "$glibc" | sort -V | head -1)" != 2.35 ]; then
  none "the wheel's liblsl needs glibc 2.35 or later (this machine: $glibc)"
fi
command -v python3 >/dev/null || none "python3 is missing (it fetches the wheel and checks the library)"
python3 -m pip --version >/dev/null 2>&1 || none "pip is missing (apt-get install python3-pip)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "get-liblsl: fetching pylsl $PYLSL_VERSION ($PLATFORM wheel) for its liblsl $LIBLSL_VERSION" >&2
# pip checks the wheel against the hash the registry's index gives.
if ! python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --platform "$PLATFORM" --dest "$tmp" "pylsl==$PYLSL_VERSION" >&2; then
  none "pip could not fetch pylsl $PYLSL_VERSION"
fi
wheel=$(ls "$tmp"/pylsl-"$PYLSL_VERSION"-*.whl 2>/dev/null | head -1)
[ -n "$wheel" ] || none "no pylsl wheel was fetched"
python3 -m zipfile -e "$wheel" "$tmp/wheel"
lib="$tmp/wheel/pylsl/lib/liblsl.so.$LIBLSL_VERSION"
[ -f "$lib" ] || none "the wheel carries no liblsl.so.$LIBLSL_VERSION"

mkdir -p "$prefix.tmp/lib"
cp "$lib" "$prefix.tmp/lib/"
ln -sf "liblsl.so.$LIBLSL_VERSION" "$prefix.tmp/lib/liblsl.so.2"
ln -sf "liblsl.so.2" "$prefix.tmp/lib/liblsl.so"
# It loads here, and it is the version asked for.
got=$(python3 -c 'import ctypes, sys; print(ctypes.CDLL(sys.argv[1]).lsl_library_version())' \
  "$prefix.tmp/lib/liblsl.so.2") || none "the library does not load on this machine"
want=$(echo "$LIBLSL_VERSION" | awk -F. '{print $1*100+$2}')
[ "$got" = "$want" ] || none "the library says it is version $got, not $want"

cat >"$prefix.tmp/env.sh" <<EOF
# liblsl $LIBLSL_VERSION (from pylsl $PYLSL_VERSION's wheel), for what was linked against it.
export LD_LIBRARY_PATH="$prefix/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export HINDSIGHT_LIBLSL="$prefix/lib"
# The run path of what is built (build.rs): it starts from any shell.
export HINDSIGHT_RPATH="$prefix/lib"
EOF
cat >"$prefix.tmp/cargo.toml" <<EOF
# lsl-sys's \`links = "lsl"\`: link liblsl $LIBLSL_VERSION from here (lsl-sys's own build of
# 1.13.1 is skipped).
[target.x86_64-unknown-linux-gnu.lsl]
rustc-link-search = ["native=$prefix/lib"]
rustc-link-lib = ["dylib=lsl"]
EOF
rm -rf "$prefix"
mv "$prefix.tmp" "$prefix"
echo "get-liblsl: liblsl $LIBLSL_VERSION in $prefix" >&2
echo "$prefix"
