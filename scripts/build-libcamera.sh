#!/usr/bin/env bash
# Builds libcamera with only its `virtual` pipeline handler, so that hindsight's
# `source: libcamera` is compiled and tested on a machine without a camera (CI, a laptop).
# FOR TESTS ONLY: the build carries our test patches (scripts/libcamera-test/*.patch) and
# has no real pipeline; on a Raspberry Pi use Raspberry Pi OS's own libcamera (README).
#
#   scripts/build-libcamera.sh [PREFIX]
#   HINDSIGHT_LIBCAMERA_ARCH=aarch64 scripts/build-libcamera.sh
#
# With HINDSIGHT_LIBCAMERA_ARCH=aarch64 (on an x86_64 machine) it is built for 64-bit
# Raspberry Pi OS with the cross compiler and Debian's arm64 libraries (installed here
# as :arm64 packages), into <cache>/<version>-<hash>-aarch64 (no env.sh: that build is
# run under qemu-user, by scripts/cross-check.sh and tests/arm.rs).
#
# The source is Debian's libcamera source package (`apt-get source`, in a private apt
# configuration that reads the machine's own Debian mirror with a deb-src line for
# unstable and leaves the machine's sources untouched). The build is cached under
# ~/.cache/hindsight/libcamera/<version>-<hash of the patches and this script>; PREFIX
# (default: that cache directory) receives the install. Later runs with the same
# version and patches do nothing but print the prefix.
#
# On success the last line printed is the prefix, and PREFIX/env.sh sets PKG_CONFIG_PATH
# and LD_LIBRARY_PATH for building and running hindsight --features libcamera. On
# failure it says why, loudly, and exits 2; scripts/test.sh then tests without the
# feature and the libcamera tests report themselves ignored.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/hindsight/libcamera
# The libcamera releases the `libcamera` crate (0.7) compiles against; Raspberry Pi OS
# bookworm ships 0.5, trixie 0.7.
MIN_VERSION=0.4
MAX_VERSION=0.7

fail() {
  echo >&2
  echo "######################################################################" >&2
  echo "# build-libcamera: $*" >&2
  echo "# hindsight's libcamera source cannot be built or tested on this machine." >&2
  echo "######################################################################" >&2
  exit 2
}

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
need=(meson ninja-build pkg-config g++ python3-yaml python3-ply python3-jinja2 libyaml-dev
      libyuv-dev libjpeg-dev libssl-dev dpkg-dev patch debian-archive-keyring)
arch=${HINDSIGHT_LIBCAMERA_ARCH:-}
case "$arch" in
  "") ;;
  aarch64)
    [ "$(uname -m)" = x86_64 ] || fail "a cross build for $arch is made on x86_64 only"
    gnu=aarch64-linux-gnu
    dpkg --print-foreign-architectures | grep -qx arm64 ||
      fail "dpkg has no arm64 architecture (scripts/install-deps.sh --cross adds it)"
    need+=(g++-aarch64-linux-gnu libyaml-dev:arm64 libyuv-dev:arm64 libjpeg-dev:arm64
           libssl-dev:arm64) ;;
  *) fail "HINDSIGHT_LIBCAMERA_ARCH=$arch: only aarch64 is built" ;;
esac
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "build-libcamera: installing ${missing[*]}"
  $sudo apt-get update -qq || fail "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || fail "cannot install ${missing[*]}"
fi

# libcamera's build runs Python scripts that need Debian's python3-yaml, -ply and -jinja2:
# Debian's python3 must come before any other (pyenv, a venv) on PATH.
export PATH=/usr/bin:$PATH

# A private apt configuration: the machine's Debian mirror, deb-src, unstable.
mkdir -p "$CACHE"
APT=$CACHE/apt
mkdir -p "$APT/parts" "$APT/lists/partial" "$APT/cache/archives/partial"
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "$f")
  [ -n "$mirror" ] && break
done
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || fail "no Debian mirror found in /etc/apt/sources.list(.d)"
cat > "$APT/parts/libcamera-src.sources" <<EOF
Types: deb-src
URIs: $mirror
Suites: unstable
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
APTO=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$APT/parts"
      -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT/cache"
      -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")

version=""
if apt-get "${APTO[@]}" -qq update 2>"$APT/update.log"; then
  version=$(apt-cache "${APTO[@]}" showsrc libcamera 2>/dev/null | awk '/^Version:/ {print $2; exit}')
fi
if [ -z "$version" ]; then
  # No registry: an earlier download may still be in the cache.
  dsc=$(ls -1 "$CACHE"/src/libcamera_*.dsc 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$dsc" ] || fail "cannot get libcamera's Debian source package ($(tail -1 "$APT/update.log" 2>/dev/null))"
  version=$(basename "$dsc" .dsc | sed 's/^libcamera_//')
  echo "build-libcamera: the package registry did not answer; using the cached source $version"
fi
upstream=${version%%-*}
upstream=${upstream#*:}
mm=$(echo "$upstream" | cut -d. -f1,2)
if [ "$(printf '%s\n%s\n' "$MIN_VERSION" "$mm" | sort -V | head -1)" != "$MIN_VERSION" ] ||
   [ "$(printf '%s\n%s\n' "$MAX_VERSION" "$mm" | sort -V | tail -1)" != "$MAX_VERSION" ]; then
  fail "Debian offers libcamera $version; hindsight's libcamera crate supports $MIN_VERSION to $MAX_VERSION"
fi

# What the build depends on: the patches and the build options (not this script's comments).
OPTIONS=(--buildtype=release -Dpipelines=virtual -Dipas= -Dcam=disabled -Dqcam=disabled
         -Dgstreamer=disabled -Dv4l2=false -Dlc-compliance=disabled -Dtest=false
         -Ddocumentation=disabled -Dpycamera=disabled -Dudev=disabled -Dtracing=disabled)
key=$( (cat "$ROOT"/scripts/libcamera-test/*.patch; echo "${OPTIONS[*]}") | sha256sum | cut -c1-12)
stamp="$upstream-$key${arch:+-$arch}"
PREFIX=${1:-$CACHE/$stamp}
if [ -f "$PREFIX/.hindsight-build" ] && [ "$(cat "$PREFIX/.hindsight-build")" = "$stamp" ]; then
  echo "build-libcamera: libcamera $upstream (virtual pipeline, test patches $key) is already built${arch:+ for $arch}"
  echo "$PREFIX"
  exit 0
fi

mkdir -p "$CACHE/src"
cd "$CACHE/src"
if [ ! -f "libcamera_${version#*:}.dsc" ]; then
  apt-get "${APTO[@]}" -qq source --download-only "libcamera=$version" \
    || fail "apt-get source libcamera=$version failed"
fi
work=$CACHE/build-$stamp
rm -rf "$work"
mkdir -p "$work"
# dpkg-source checks the files against the .dsc (whose hashes come from the signed
# index) and applies Debian's own patches.
dpkg-source --no-check -x "libcamera_${version#*:}.dsc" "$work/src" >/dev/null \
  || fail "cannot unpack libcamera_${version#*:}.dsc"
for p in "$ROOT"/scripts/libcamera-test/*.patch; do
  echo "build-libcamera: applying $(basename "$p")"
  patch -d "$work/src" -p1 --forward --quiet < "$p" \
    || fail "$(basename "$p") does not apply to libcamera $version: update the patch"
done

cross=()
if [ -n "$arch" ]; then
  # Debian's arm64 libraries (multiarch) through the build machine's pkg-config.
  cat > "$work/cross.ini" <<EOF
[binaries]
c = '$gnu-gcc'
cpp = '$gnu-g++'
ar = '$gnu-ar'
strip = '$gnu-strip'
pkgconfig = 'pkg-config'

[properties]
pkg_config_libdir = ['/usr/lib/$gnu/pkgconfig', '/usr/share/pkgconfig']

[host_machine]
system = 'linux'
cpu_family = '$arch'
cpu = '$arch'
endian = 'little'
EOF
  cross=(--cross-file "$work/cross.ini")
fi

echo "build-libcamera: building libcamera $upstream (virtual pipeline only${arch:+, for $arch}) into $PREFIX"
meson setup "$work/build" "$work/src" --prefix="$PREFIX" "${cross[@]}" "${OPTIONS[@]}" \
  >"$work/meson.log" 2>&1 \
  || { tail -30 "$work/meson.log" >&2; fail "meson setup failed (log: $work/meson.log)"; }
ninja -C "$work/build" install >"$work/ninja.log" 2>&1 \
  || { tail -30 "$work/ninja.log" >&2; fail "the build failed (log: $work/ninja.log)"; }

pc=$(dirname "$(find "$PREFIX" -name libcamera.pc | head -1)")
[ -n "$pc" ] || fail "no libcamera.pc under $PREFIX"
lib=$(dirname "$pc")
[ -n "$arch" ] || cat > "$PREFIX/env.sh" <<EOF
# Build and run hindsight --features libcamera against the test libcamera in $PREFIX.
export PKG_CONFIG_PATH="$pc\${PKG_CONFIG_PATH:+:\$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export HINDSIGHT_TEST_LIBCAMERA="$upstream"
EOF
echo "$stamp" > "$PREFIX/.hindsight-build"
rm -rf "$work"
echo "build-libcamera: done"
echo "$PREFIX"
