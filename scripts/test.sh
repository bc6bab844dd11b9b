#!/usr/bin/env bash
# The whole test suite, as the README and CI run it. It builds the test libcamera (only its
# virtual camera, with our test patches; cached under ~/.cache, about 4 minutes the first
# time) with scripts/build-libcamera.sh and runs every test with --features libcamera
# against it. If libcamera cannot be built here, it says so loudly and runs the suite
# without the feature: the libcamera tests are then reported as ignored, with the reason.
# liblsl: the current one from scripts/get-liblsl.sh where it can be had (a wheel's, or
# built from source), else lsl-sys's bundled 1.13.1 (scripts/liblsl-env.sh).
# Without arguments (the whole suite), it then builds hindsight for a Raspberry Pi's
# aarch64 and armv7 (scripts/cross-check.sh: NOT RUN where the cross compilers are missing;
# `scripts/install-deps.sh --cross` installs them).
#   scripts/test.sh [cargo test arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/liblsl-env.sh

features=()
if out=$(bash scripts/build-libcamera.sh) && prefix=$(printf '%s\n' "$out" | tail -1) &&
   [ -f "$prefix/env.sh" ]; then
  printf '%s\n' "$out" | sed '$d'
  # shellcheck source=/dev/null
  . "$prefix/env.sh"
  echo "test: libcamera $HINDSIGHT_TEST_LIBCAMERA (virtual camera) in $prefix"
  features=(--features libcamera)
else
  echo "##################################################################################" >&2
  echo "# test: NO libcamera: the tests of source: libcamera will be reported as ignored #" >&2
  echo "##################################################################################" >&2
fi
if [ $# -gt 0 ]; then
  exec cargo "${LIBLSL_CARGO[@]}" test --locked "${features[@]}" "$@"
fi
cargo "${LIBLSL_CARGO[@]}" test --locked "${features[@]}"
if [ "$(uname -m)" = x86_64 ]; then
  bash scripts/cross-check.sh
else
  echo "test: cross-check NOT RUN: it builds for ARM from an x86_64 machine (this is $(uname -m))" >&2
fi
