#!/usr/bin/env bash
# Builds hindsight for a Raspberry Pi's architectures on this machine (a cross build), as
# scripts/install.sh would build it there, and checks what was built:
#   aarch64  64-bit Raspberry Pi OS (the default on a Pi 4 and 5): linked with the current
#            liblsl that scripts/get-liblsl.sh gets for it (from mne-lsl's wheel)
#   armv7    32-bit Raspberry Pi OS: linked with the liblsl 1.17.7 that
#            scripts/get-liblsl.sh builds for it from source (with the cross compiler and
#            libpugixml-dev:armhf; no wheel carries one), else with the 1.13.1 lsl-sys builds
# Each binary must be an ELF executable for its machine and, with a current liblsl, need
# liblsl.so.2 (not have the bundled one linked in). The `libcamera` feature (a Pi's
# cameras) is built into the aarch64 binary, linked with the test libcamera built for
# aarch64 from the same Debian source (HINDSIGHT_LIBCAMERA_ARCH=aarch64
# scripts/build-libcamera.sh; Debian 12's own libcamera is older than the 0.4 the binding
# needs), which tests/arm.rs runs with the virtual camera; and compiled, not linked, for
# armv7 against the x86_64 test libcamera's headers (the same on every architecture).
#
# Then it runs what it built, under qemu-user (qemu-arm, qemu-aarch64) with Debian's
# multiarch C library for the architecture (libc6:armhf/arm64, installed with ALSA's
# headers) and the liblsl the build is linked with: the workspace's unit tests and the
# Matroska muxer's own (crates/mkv/tests/tools.rs, with a 4.4 GB file past every 32-bit
# offset), for the architectures in HINDSIGHT_CROSS_UNIT_TESTS (default armv7: 32-bit,
# where it differs most from this machine; about 2 minutes, aarch64 2.5). tests/arm.rs
# runs both binaries as a rig runs them (scripts/test.sh runs it after this script).
#
# Needs, for each architecture: its Rust target (rustup), its C and C++ cross compilers and
# ALSA's headers for it, and qemu-user to run it (scripts/install-deps.sh --cross installs
# them on Debian). Where one is missing, it says NOT RUN and what, and exits 0; a build
# that fails, or a unit test, exits 1.
#   scripts/cross-check.sh [aarch64|armv7 ...]
set -euo pipefail
cd "$(dirname "$0")/.."

# The cross builds' target folder, under the cache as the test libcamera and liblsl are:
# a clean clone (CI's) then rebuilds only the workspace's crates there, 40 s instead of 2.5
# minutes. It holds about 1.5 GB; remove it to get that back.
cross_dir="${XDG_CACHE_HOME:-$HOME/.cache}/hindsight/cross-target"

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(aarch64 armv7)
unit_tests=" ${HINDSIGHT_CROSS_UNIT_TESTS-armv7} "
failed=0

# The test libcamera's pkg-config folder, for its headers (none: the feature is not checked).
libcamera_pc=""
if out=$(bash scripts/build-libcamera.sh 2>/dev/null) && lc=$(tail -1 <<<"$out") && [ -d "$lc/lib" ]; then
  pc_file=$(find "$lc/lib" -name libcamera.pc | head -1)
  [ -n "$pc_file" ] && libcamera_pc=$(dirname "$pc_file")
fi

# A target not built in this run: its binary of an earlier run (the folder is cached) must
# not pass for this code's in tests/arm.rs, which then says NOT RUN.
forget() {
  rm -f "$cross_dir/$1/debug/hindsight" "$cross_dir/$1/debug/libcamera-lib"
}

not_run() {
  echo "##########################################################################" >&2
  echo "# cross-check $1: NOT RUN: $2" >&2
  echo "##########################################################################" >&2
}

for t in "${targets[@]}"; do
  case "$t" in
    aarch64) triple=aarch64-unknown-linux-gnu gnu=aarch64-linux-gnu machine=AArch64 qemu=qemu-aarch64 ;;
    armv7) triple=armv7-unknown-linux-gnueabihf gnu=arm-linux-gnueabihf machine=ARM qemu=qemu-arm ;;
    *) echo "cross-check: no such target: $t (aarch64 or armv7)" >&2; exit 2 ;;
  esac
  if ! rustup target list --installed 2>/dev/null | grep -qx "$triple" &&
     ! timeout 600 rustup target add "$triple" >&2; then
    not_run "$t" "the Rust target $triple is not installed and rustup could not add it"
    forget "$triple"
    continue
  fi
  if ! command -v "$gnu-gcc" >/dev/null || ! command -v "$gnu-g++" >/dev/null; then
    not_run "$t" "no $gnu-gcc/g++ (scripts/install-deps.sh --cross)"
    forget "$triple"
    continue
  fi
  pc="/usr/lib/$gnu/pkgconfig"
  if [ ! -f "$pc/alsa.pc" ]; then
    not_run "$t" "no ALSA headers for $gnu ($pc/alsa.pc; scripts/install-deps.sh --cross)"
    forget "$triple"
    continue
  fi
  up=$(echo "$triple" | tr 'a-z-' 'A-Z_')
  low=$(echo "$triple" | tr '-' '_')
  export "CARGO_TARGET_${up}_LINKER=$gnu-gcc"
  export "CC_${low}=$gnu-gcc" "CXX_${low}=$gnu-g++" "AR_${low}=$gnu-ar"
  export "PKG_CONFIG_PATH_${low}=$pc" PKG_CONFIG_ALLOW_CROSS=1
  lsl_cargo=()
  needs_liblsl=no
  if prefix=$(HINDSIGHT_LIBLSL_ARCH=$t bash scripts/get-liblsl.sh | tail -1) &&
     [ -f "$prefix/cargo.toml" ]; then
    lsl_cargo=(--config "$prefix/cargo.toml")
    needs_liblsl=yes
    echo "cross-check $t: liblsl from $prefix" >&2
  else
    echo "cross-check $t: lsl-sys's bundled liblsl 1.13.1, built from source" >&2
  fi
  # aarch64 (64-bit Raspberry Pi OS, whose libcamera a Pi's cameras need) is built with
  # the libcamera feature, linked with the test libcamera built for it
  # (HINDSIGHT_LIBCAMERA_ARCH=aarch64 scripts/build-libcamera.sh), which tests/arm.rs runs
  # under qemu-user with the virtual camera; without that libcamera, without the feature.
  features=()
  if [ "$t" = aarch64 ]; then
    if out=$(HINDSIGHT_LIBCAMERA_ARCH=aarch64 bash scripts/build-libcamera.sh 2>&1) &&
       lc=$(tail -1 <<<"$out") && pc_file=$(find "$lc/lib" -name libcamera.pc | head -1) &&
       [ -n "$pc_file" ]; then
      features=(--features libcamera)
      export "PKG_CONFIG_PATH_${low}=$pc:$(dirname "$pc_file")"
    else
      tail -5 <<<"$out" >&2
      not_run "$t --features libcamera" "no libcamera built for aarch64 (above): built without it"
    fi
  fi
  start=$SECONDS
  # Its own target folder ($cross_dir), shared by both targets (the build scripts and
  # macros are built once): the host's build is not touched. Not optimized: a build to see
  # that it builds, not one to run, made in half the time. No run path: the library's place on this
  # machine means nothing on a Pi (install.sh there gives its own).
  if ! env -u HINDSIGHT_RPATH CARGO_INCREMENTAL=0 CARGO_TARGET_DIR="$cross_dir" \
      cargo "${lsl_cargo[@]}" --config 'profile.dev.opt-level=0' \
      --config 'profile.dev.package."*".opt-level=0' \
      build --locked --target "$triple" "${features[@]}" --bins >&2; then
    echo "cross-check $t: FAILED to build" >&2
    failed=1
    forget "$triple"
    continue
  fi
  for bin in hindsight hindsight-lsl-listen; do
    f="$cross_dir/$triple/debug/$bin"
    header=$(readelf -h "$f")
    if ! grep -Eq "Machine: +$machine\$" <<<"$header"; then
      echo "cross-check $t: $f is not an $machine executable:" >&2
      grep Machine <<<"$header" >&2
      failed=1
    fi
  done
  f="$cross_dir/$triple/debug/hindsight"
  if [ "$needs_liblsl" = yes ] && ! readelf -d "$f" | grep -q 'NEEDED.*\[liblsl\.so\.2\]'; then
    echo "cross-check $t: $f does not link the current liblsl (liblsl.so.2)" >&2
    failed=1
  fi
  # Where the libcamera it is linked with is, for tests/arm.rs.
  rm -f "$cross_dir/$triple/debug/libcamera-lib"
  if [ ${#features[@]} -gt 0 ]; then
    if readelf -d "$f" | grep -q 'NEEDED.*\[libcamera\.so'; then
      dirname "$pc_file" | xargs dirname > "$cross_dir/$triple/debug/libcamera-lib"
    else
      echo "cross-check $t: $f does not link libcamera" >&2
      failed=1
    fi
  fi
  echo "cross-check $t: built $f ($(stat -c %s "$f") bytes, $((SECONDS - start)) s${features:+, with libcamera})" \
    "$(readelf -h "$f" | awk -F: '/Machine/ {gsub(/^ +/, "", $2); print $2}')," \
    "liblsl: $([ "$needs_liblsl" = yes ] && echo "liblsl.so.2 from $prefix" || echo "1.13.1 linked in")" >&2
  # The unit tests (every crate of the workspace), built as above and run under qemu-user:
  # cargo runs each test binary through the runner. -L / (qemu's default) takes the
  # multiarch C library; the cross compilers' own copy under /usr/$gnu is of another
  # Debian release than the multiarch one, and a program run with that loader and this
  # libc hangs at its first thread.
  if [[ "$unit_tests" == *" $t "* ]]; then
    if ! command -v "$qemu" >/dev/null; then
      not_run "$t unit tests" "no $qemu (qemu-user: scripts/install-deps.sh --cross)"
    else
      start=$SECONDS
      runner="$qemu"
      [ "$needs_liblsl" = yes ] && runner="$qemu -E LD_LIBRARY_PATH=$prefix/lib"
      if env -u HINDSIGHT_RPATH CARGO_INCREMENTAL=0 CARGO_TARGET_DIR="$cross_dir" \
          "CARGO_TARGET_${up}_RUNNER=$runner" \
          cargo "${lsl_cargo[@]}" --config 'profile.dev.opt-level=0' \
          --config 'profile.dev.package."*".opt-level=0' \
          test --locked --target "$triple" --workspace --lib --test tools >&2; then
        echo "cross-check $t: the unit tests passed under $qemu ($((SECONDS - start)) s)" >&2
      else
        echo "cross-check $t: unit tests FAILED under $qemu" >&2
        failed=1
      fi
    fi
  fi
  # The libcamera feature is compiled for armv7 alone: it differs from this x86_64 machine
  # (where the tests compile and run the feature) where aarch64 does, an unsigned C `char`
  # and narrower libc types (`nlink_t`, `blksize_t`), and is 32-bit besides; checking
  # both cost CI 40 s more (and aarch64's build without the feature is still made).
  [ "$t" = armv7 ] || continue
  if [ -z "$libcamera_pc" ]; then
    not_run "$t --features libcamera" "no test libcamera (scripts/build-libcamera.sh) for its headers"
    continue
  fi
  start=$SECONDS
  if env -u HINDSIGHT_RPATH CARGO_INCREMENTAL=0 CARGO_TARGET_DIR="$cross_dir" \
      "PKG_CONFIG_PATH_${low}=$pc:$libcamera_pc" \
      cargo "${lsl_cargo[@]}" --config 'profile.dev.opt-level=0' \
      --config 'profile.dev.package."*".opt-level=0' \
      check --locked --target "$triple" --features libcamera --bins >&2; then
    echo "cross-check $t: --features libcamera compiles ($((SECONDS - start)) s)" >&2
  else
    echo "cross-check $t: FAILED to compile --features libcamera" >&2
    failed=1
  fi
done
exit $failed
