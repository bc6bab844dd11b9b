#!/usr/bin/env bash
# A current liblsl for hindsight, from a package registry (PyPI), instead of the liblsl
# 1.13.1 (2020) that lsl-sys bundles, whose sending threads poll every millisecond for
# each connected inlet (about a thousand wakeups a second per inlet) and which lacks years
# of fixes (README, "Which liblsl"). Two wheels carry one, built for manylinux:
#   x86_64   pylsl 1.18.6's: liblsl 1.18.0 (glibc >= 2.35)
#   aarch64  mne-lsl 1.14.0's: liblsl 1.17.7 (glibc >= 2.17): a Raspberry Pi with a 64-bit
#            OS (pylsl's aarch64 wheel carries none)
# Elsewhere (a 32-bit Raspberry Pi OS, armv7: no wheel carries liblsl for it; or a glibc
# too old for the wheel) it builds liblsl 1.17.7 from the source that mne-lsl 1.14.0's
# source package on PyPI carries, with CMake 3.31 from PyPI's `cmake` wheel where the
# system's is older than the 3.28 its build asks (Debian 12 has 3.25) and Debian's
# pugixml (libpugixml-dev, which scripts/install-deps.sh installs): about 25 s on this
# 2-core machine, a few minutes on a Raspberry Pi, once.
#
# Puts the library under ~/.cache/hindsight/liblsl/<version>/lib and prints that prefix on
# its last line. The prefix holds:
#   env.sh      HINDSIGHT_RPATH, the run path build.rs gives what is built against it,
#               and LD_LIBRARY_PATH
#   cargo.toml  a `links = "lsl"` override for cargo (`cargo --config <prefix>/cargo.toml`):
#               lsl-sys then links this library instead of building 1.13 from source
# A later run only prints the prefix.
#
# HINDSIGHT_LIBLSL_ARCH=aarch64 or armv7 gets another architecture's library (for a cross
# build: scripts/cross-check.sh), into <version>-<arch>: aarch64's from its wheel, armv7's
# built with the cross compiler arm-linux-gnueabihf-g++ and libpugixml-dev:armhf. It is
# checked by its ELF header, as it cannot be loaded here.
#
# HINDSIGHT_LIBLSL_FROM=source builds it from source even where a wheel would do (into
# <cache>/liblsl/1.17.7, which a later run then finds).
#
# Where no such library can be had (no registry, no compiler, no pugixml), it says why
# and exits 2; callers then build with the bundled liblsl 1.13.
#   scripts/get-liblsl.sh
set -euo pipefail

# The architecture hindsight is built for: Rust's host, which is not `uname -m` on a 32-bit
# Raspberry Pi OS booted with its 64-bit kernel (uname says aarch64, the programs are armv7).
host=$(rustc -vV 2>/dev/null | awk '/^host:/ {print $2}')
[ -n "$host" ] || host="$(uname -m)-unknown-linux-gnu"
here=${host%%-*}
arch=${HINDSIGHT_LIBLSL_ARCH:-$here}
# The Rust target whose links override cargo.toml names, the GNU triplet of a cross
# compiler, and the ELF machine (e_machine) the library must be built for.
cross=""
case "$arch" in
  "$here") TRIPLE=$host ;;
  aarch64) TRIPLE=aarch64-unknown-linux-gnu cross=aarch64-linux-gnu ;;
  armv7) TRIPLE=armv7-unknown-linux-gnueabihf cross=arm-linux-gnueabihf ;;
  *) echo "get-liblsl: cannot get liblsl for $arch from $here (aarch64 or armv7)" >&2; exit 2 ;;
esac
case "$arch" in
  x86_64) ELF_MACHINE=62 ;;
  aarch64) ELF_MACHINE=183 ;;
  arm*) ELF_MACHINE=40 ;;
  *) ELF_MACHINE="" ;;
esac
SOURCE_VERSION=1.17.7 SOURCE_PACKAGE=mne-lsl SOURCE_PACKAGE_VERSION=1.14.0
CMAKE_WHEEL_VERSION=3.31.6

none() {
  echo "get-liblsl: no current liblsl here: $*" >&2
  echo "get-liblsl: hindsight builds with the liblsl 1.13.1 that lsl-sys bundles" >&2
  exit 2
}

cache="${XDG_CACHE_HOME:-$HOME/.cache}/hindsight"
# The folder for a version: <cache>/liblsl/<version>, or <version>-<arch> for another
# architecture's.
prefix_of() {
  if [ "$arch" = "$here" ]; then echo "$cache/liblsl/$1"; else echo "$cache/liblsl/$1-$arch"; fi
}

# A library got before: the wheel's version first.
case "$arch" in
  x86_64) wheel_version=1.18.0 ;;
  aarch64) wheel_version=1.17.7 ;;
  *) wheel_version="" ;;
esac
[ "${HINDSIGHT_LIBLSL_FROM:-}" != source ] || wheel_version=
for v in $wheel_version $SOURCE_VERSION; do
  p=$(prefix_of "$v")
  if [ -f "$p/cargo.toml" ] && grep -q HINDSIGHT_RPATH "$p/env.sh" 2>/dev/null; then
    echo "$p"
    exit 0
  fi
done

command -v python3 >/dev/null || none "python3 is missing (it fetches liblsl and checks it)"
python3 -m pip --version >/dev/null 2>&1 || none "pip is missing (apt-get install python3-pip)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lib"

# From a wheel: puts liblsl.so.<version> in $tmp/lib and sets LIBLSL_VERSION and FROM;
# fails (saying why) where the wheel cannot be used.
from_wheel() {
  local wheel version platform in_wheel min_glibc
  case "$arch" in
    x86_64) wheel=pylsl version=1.18.6 LIBLSL_VERSION=1.18.0 min_glibc=2.35
            platform=manylinux_2_35_x86_64 in_wheel=pylsl/lib ;;
    aarch64) wheel=mne-lsl version=1.14.0 LIBLSL_VERSION=1.17.7 min_glibc=2.17
             platform=manylinux_2_28_aarch64 in_wheel=mne_lsl/lsl/lib ;;
    *) echo "get-liblsl: no wheel on PyPI carries liblsl for $arch" >&2; return 1 ;;
  esac
  if [ "$arch" = "$here" ]; then
    local glibc
    glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
    if [ -z "$glibc" ] ||
       [ "$(printf '%s\n%s\n' "$glibc" "$min_glibc" | sort -V | head -1)" != "$min_glibc" ]; then
      echo "get-liblsl: $wheel's liblsl needs glibc $min_glibc or later (this machine: ${glibc:-none})" >&2
      return 1
    fi
  fi
  echo "get-liblsl: fetching $wheel $version ($platform wheel) for its liblsl $LIBLSL_VERSION" >&2
  # pip checks the wheel against the hash the registry's index gives. (mne-lsl's wheel is
  # for CPython >= 3.11, abi3: the Python version only picks it; the library needs none.)
  if ! python3 -m pip download --quiet --no-deps --only-binary=:all: \
      --platform "$platform" --python-version 3.11 --dest "$tmp/wheel" "$wheel==$version" >&2; then
    echo "get-liblsl: pip could not fetch $wheel $version" >&2
    return 1
  fi
  local file
  file=$(ls "$tmp"/wheel/"${wheel//-/_}"-"$version"-*.whl 2>/dev/null | head -1)
  [ -n "$file" ] || { echo "get-liblsl: no $wheel wheel was fetched" >&2; return 1; }
  python3 -m zipfile -e "$file" "$tmp/wheel/x"
  cp "$tmp/wheel/x/$in_wheel/liblsl.so.$LIBLSL_VERSION" "$tmp/lib/" 2>/dev/null ||
    { echo "get-liblsl: the wheel carries no liblsl.so.$LIBLSL_VERSION" >&2; return 1; }
  FROM="$wheel $version's wheel"
}

# A CMake of at least 3.28: the system's, else the one of PyPI's `cmake` wheel (kept
# under the cache). Prints its path.
cmake_328() {
  if command -v cmake >/dev/null &&
     [ "$(printf '%s\n3.28\n' "$(cmake --version | awk 'NR==1 {print $3}')" | sort -V | head -1)" = 3.28 ]; then
    command -v cmake
    return
  fi
  local dir="$cache/cmake-$CMAKE_WHEEL_VERSION"
  if [ ! -x "$dir/bin/cmake" ]; then
    echo "get-liblsl: fetching CMake $CMAKE_WHEEL_VERSION (PyPI's cmake wheel; this system's is older than 3.28)" >&2
    python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp/cmake" \
      "cmake==$CMAKE_WHEEL_VERSION" >&2 || return 1
    python3 -m zipfile -e "$tmp"/cmake/cmake-*.whl "$tmp/cmake/x" &&
      mkdir -p "$cache" && rm -rf "$dir.tmp" &&
      cp -r "$tmp/cmake/x/cmake/data" "$dir.tmp" && chmod +x "$dir.tmp"/bin/* &&
      rm -rf "$dir" && mv "$dir.tmp" "$dir" || return 1
  fi
  "$dir/bin/cmake" --version >/dev/null || return 1
  echo "$dir/bin/cmake"
}

# From source: builds liblsl.so.$SOURCE_VERSION into $tmp/lib; fails (saying why) where it
# cannot.
from_source() {
  LIBLSL_VERSION=$SOURCE_VERSION
  local cc=cc cxx=c++ cmake
  if [ -n "$cross" ]; then cc=$cross-gcc cxx=$cross-g++; fi
  command -v "$cxx" >/dev/null || { echo "get-liblsl: no C++ compiler ($cxx) to build liblsl" >&2; return 1; }
  cmake=$(cmake_328) || { echo "get-liblsl: no CMake 3.28 or later, and pip could not fetch one" >&2; return 1; }
  echo "get-liblsl: building liblsl $SOURCE_VERSION from $SOURCE_PACKAGE $SOURCE_PACKAGE_VERSION's source package" >&2
  # Only the source package, not a wheel; pip checks it against the index's hash (and reads
  # its metadata, which fetches its build tools).
  if ! python3 -m pip download --quiet --no-deps --no-binary "$SOURCE_PACKAGE" --dest "$tmp/src" \
      "$SOURCE_PACKAGE==$SOURCE_PACKAGE_VERSION" >&2; then
    echo "get-liblsl: pip could not fetch $SOURCE_PACKAGE $SOURCE_PACKAGE_VERSION's source" >&2
    return 1
  fi
  local top="${SOURCE_PACKAGE//-/_}-$SOURCE_PACKAGE_VERSION"
  tar -xzf "$tmp/src/$top.tar.gz" -C "$tmp/src" "$top/src/liblsl" ||
    { echo "get-liblsl: the source package carries no liblsl" >&2; return 1; }
  # pugixml: Debian's (the build would otherwise fetch it from the network). A cross build
  # looks for it in the target's multiarch folder.
  local args=(-DCMAKE_BUILD_TYPE=Release -DLSL_FETCH_PUGIXML=OFF -DLSL_UNITTESTS=OFF
              -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx")
  if [ -n "$cross" ]; then
    args+=(-DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR="${cross%%-*}"
           -DCMAKE_LIBRARY_ARCHITECTURE="$cross")
  fi
  if ! "$cmake" -S "$tmp/src/$top/src/liblsl" -B "$tmp/build" "${args[@]}" >"$tmp/build.log" 2>&1 ||
     ! "$cmake" --build "$tmp/build" --target lsl -j "$(nproc)" >>"$tmp/build.log" 2>&1; then
    tail -20 "$tmp/build.log" >&2
    local dev=libpugixml-dev
    [ -z "$cross" ] || dev="libpugixml-dev:$( [ "$arch" = armv7 ] && echo armhf || echo arm64)"
    echo "get-liblsl: liblsl did not build (above; is $dev installed?)" >&2
    return 1
  fi
  cp "$tmp/build/liblsl.so.$SOURCE_VERSION" "$tmp/lib/" ||
    { echo "get-liblsl: the build made no liblsl.so.$SOURCE_VERSION" >&2; return 1; }
  FROM="$SOURCE_PACKAGE $SOURCE_PACKAGE_VERSION's source, built here with Debian's pugixml"
}

if [ "${HINDSIGHT_LIBLSL_FROM:-}" = source ]; then
  from_source || none "it did not build from source (above)"
else
  from_wheel || from_source || none "neither a wheel nor a build from source (above)"
fi

prefix=$(prefix_of "$LIBLSL_VERSION")
rm -rf "$prefix.tmp"
mkdir -p "$prefix.tmp"
mv "$tmp/lib" "$prefix.tmp/lib"
ln -sf "liblsl.so.$LIBLSL_VERSION" "$prefix.tmp/lib/liblsl.so.2"
ln -sf "liblsl.so.2" "$prefix.tmp/lib/liblsl.so"
# Built for the architecture asked for (its ELF header's e_machine), with the soname
# hindsight is linked with.
machine=$(python3 -c 'import sys; print(int.from_bytes(open(sys.argv[1], "rb").read(20)[18:20], "little"))' \
  "$prefix.tmp/lib/liblsl.so.2")
[ -z "$ELF_MACHINE" ] || [ "$machine" = "$ELF_MACHINE" ] ||
  none "the library is for ELF machine $machine, not $arch"
if [ "$arch" = "$here" ]; then
  # It loads here, and it is the version asked for.
  got=$(python3 -c 'import ctypes, sys; print(ctypes.CDLL(sys.argv[1]).lsl_library_version())' \
    "$prefix.tmp/lib/liblsl.so.2") || none "the library does not load on this machine"
  want=$(echo "$LIBLSL_VERSION" | awk -F. '{print $1*100+$2}')
  [ "$got" = "$want" ] || none "the library says it is version $got, not $want"
fi

cat >"$prefix.tmp/env.sh" <<EOF
# liblsl $LIBLSL_VERSION (from $FROM), for what was linked against it.
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
echo "get-liblsl: liblsl $LIBLSL_VERSION in $prefix (from $FROM)" >&2
echo "$prefix"
