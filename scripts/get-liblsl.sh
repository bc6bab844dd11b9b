#!/usr/bin/env bash
# A current liblsl for hindsight, from a package registry (PyPI), instead of the liblsl
# 1.13.1 (2020) that lsl-sys bundles, whose sending threads poll every millisecond for
# each connected inlet (about a thousand wakeups a second per inlet) and which lacks years
# of fixes (README, "Which liblsl"). Two wheels carry one, built for manylinux:
#   x86_64   pylsl 1.18.6's: liblsl 1.18.0 (glibc >= 2.35)
#   aarch64  mne-lsl 1.14.0's: liblsl 1.17.7 (glibc >= 2.17): a Raspberry Pi with a 64-bit
#            OS (pylsl's aarch64 wheel carries no liblsl)
# Other architectures (a 32-bit Raspberry Pi OS: armv7l) have none on PyPI.
#
# Puts the library under ~/.cache/hindsight/liblsl/<version>/lib and prints that prefix on
# its last line. The prefix holds:
#   env.sh      HINDSIGHT_RPATH, the run path build.rs gives what is built against it,
#               and LD_LIBRARY_PATH
#   cargo.toml  a `links = "lsl"` override for cargo (`cargo --config <prefix>/cargo.toml`):
#               lsl-sys then links this library instead of building 1.13 from source
# A later run only prints the prefix.
#
# HINDSIGHT_LIBLSL_ARCH=aarch64 fetches another architecture's library (for a cross
# build: scripts/cross-check.sh), into <version>-<arch>; it is checked by its ELF header,
# as it cannot be loaded here.
#
# Where no such library can be had (another architecture, an older glibc, no registry),
# it says why and exits 2; callers then build with the bundled liblsl 1.13.
#   scripts/get-liblsl.sh
set -euo pipefail

# The architecture hindsight is built for: Rust's host, which is not `uname -m` on a 32-bit
# Raspberry Pi OS booted with its 64-bit kernel (uname says aarch64, the programs are armv7).
here=$(rustc -vV 2>/dev/null | awk '/^host:/ {split($2, t, "-"); print t[1]}')
[ -n "$here" ] || here=$(uname -m)
arch=${HINDSIGHT_LIBLSL_ARCH:-$here}
case "$arch" in
  x86_64)
    WHEEL=pylsl WHEEL_VERSION=1.18.6 LIBLSL_VERSION=1.18.0 MIN_GLIBC=2.35
    PLATFORM=manylinux_2_35_x86_64 IN_WHEEL=pylsl/lib ELF_MACHINE=62 ;;
  aarch64)
    WHEEL=mne-lsl WHEEL_VERSION=1.14.0 LIBLSL_VERSION=1.17.7 MIN_GLIBC=2.17
    PLATFORM=manylinux_2_28_aarch64 IN_WHEEL=mne_lsl/lsl/lib ELF_MACHINE=183 ;;
  *) WHEEL="" ;;
esac
TRIPLE="$arch-unknown-linux-gnu"

none() {
  echo "get-liblsl: no current liblsl here: $*" >&2
  echo "get-liblsl: hindsight builds with the liblsl 1.13.1 that lsl-sys bundles" >&2
  exit 2
}

[ -n "$WHEEL" ] || none "no wheel on PyPI carries liblsl for $arch (x86_64 and aarch64 only)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/hindsight/liblsl"
prefix="$cache/$LIBLSL_VERSION"
[ "$arch" = "$here" ] || prefix="$cache/$LIBLSL_VERSION-$arch"

if [ -f "$prefix/cargo.toml" ] && grep -q HINDSIGHT_RPATH "$prefix/env.sh" 2>/dev/null; then
  echo "$prefix"
  exit 0
fi

if [ "$arch" = "$here" ]; then
  glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
  [ -n "$glibc" ] || none "not a glibc system"
  if [ "$(printf '%s\n%s\n' "$glibc" "$MIN_GLIBC" | sort -V | head -1)" != "$MIN_GLIBC" ]; then
    none "the wheel's liblsl needs glibc $MIN_GLIBC or later (this machine: $glibc)"
  fi
fi
command -v python3 >/dev/null || none "python3 is missing (it fetches the wheel and checks the library)"
python3 -m pip --version >/dev/null 2>&1 || none "pip is missing (apt-get install python3-pip)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "get-liblsl: fetching $WHEEL $WHEEL_VERSION ($PLATFORM wheel) for its liblsl $LIBLSL_VERSION" >&2
# pip checks the wheel against the hash the registry's index gives. (mne-lsl's wheel is
# for CPython >= 3.11, abi3: the Python version only picks it; the library needs none.)
if ! python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --platform "$PLATFORM" --python-version 3.11 --dest "$tmp" "$WHEEL==$WHEEL_VERSION" >&2; then
  none "pip could not fetch $WHEEL $WHEEL_VERSION"
fi
wheel=$(ls "$tmp"/"${WHEEL//-/_}"-"$WHEEL_VERSION"-*.whl 2>/dev/null | head -1)
[ -n "$wheel" ] || none "no $WHEEL wheel was fetched"
python3 -m zipfile -e "$wheel" "$tmp/wheel"
lib="$tmp/wheel/$IN_WHEEL/liblsl.so.$LIBLSL_VERSION"
[ -f "$lib" ] || none "the wheel carries no liblsl.so.$LIBLSL_VERSION"

mkdir -p "$prefix.tmp/lib"
cp "$lib" "$prefix.tmp/lib/"
ln -sf "liblsl.so.$LIBLSL_VERSION" "$prefix.tmp/lib/liblsl.so.2"
ln -sf "liblsl.so.2" "$prefix.tmp/lib/liblsl.so"
# Built for the architecture asked for (its ELF header's e_machine: 62 x86-64, 183
# AArch64), with the soname hindsight is linked with.
machine=$(python3 -c 'import sys; print(int.from_bytes(open(sys.argv[1], "rb").read(20)[18:20], "little"))' \
  "$prefix.tmp/lib/liblsl.so.2")
[ "$machine" = "$ELF_MACHINE" ] || none "the wheel's library is for ELF machine $machine, not $arch"
if [ "$arch" = "$here" ]; then
  # It loads here, and it is the version asked for.
  got=$(python3 -c 'import ctypes, sys; print(ctypes.CDLL(sys.argv[1]).lsl_library_version())' \
    "$prefix.tmp/lib/liblsl.so.2") || none "the library does not load on this machine"
  want=$(echo "$LIBLSL_VERSION" | awk -F. '{print $1*100+$2}')
  [ "$got" = "$want" ] || none "the library says it is version $got, not $want"
fi

cat >"$prefix.tmp/env.sh" <<EOF
# liblsl $LIBLSL_VERSION (from $WHEEL $WHEEL_VERSION's wheel), for what was linked against it.
export LD_LIBRARY_PATH="$prefix/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export HINDSIGHT_LIBLSL="$prefix/lib"
# The run path of what is built (build.rs): it starts from any shell.
export HINDSIGHT_RPATH="$prefix/lib"
EOF
cat >"$prefix.tmp/cargo.toml" <<EOF
# lsl-sys's \`links = "lsl"\`: link liblsl $LIBLSL_VERSION from here (lsl-sys's own build of
# 1.13.1 is skipped).
[target.$TRIPLE.lsl]
rustc-link-search = ["native=$prefix/lib"]
rustc-link-lib = ["dylib=lsl"]
EOF
rm -rf "$prefix"
mv "$prefix.tmp" "$prefix"
echo "get-liblsl: liblsl $LIBLSL_VERSION in $prefix" >&2
echo "$prefix"
