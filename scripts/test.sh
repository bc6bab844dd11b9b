#!/usr/bin/env bash
# The whole test suite, as the README and CI run it. It builds the test libcamera (only its
# virtual camera, with our test patches; cached under ~/.cache, about 4 minutes the first
# time) with scripts/build-libcamera.sh and runs every test with --features libcamera
# against it. If libcamera cannot be built here, it says so loudly and runs the suite
# without the feature: the libcamera tests are then reported as ignored, with the reason.
# liblsl: the current one from scripts/get-liblsl.sh where it can be had (x86_64), else the
# lsl crate's bundled 1.13.1 (scripts/liblsl-env.sh).
#   scripts/test.sh [cargo test arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/liblsl-env.sh

if out=$(bash scripts/build-libcamera.sh) && prefix=$(printf '%s\n' "$out" | tail -1) &&
   [ -f "$prefix/env.sh" ]; then
  printf '%s\n' "$out" | sed '$d'
  # shellcheck source=/dev/null
  . "$prefix/env.sh"
  echo "test: libcamera $HINDSIGHT_TEST_LIBCAMERA (virtual camera) in $prefix"
  exec cargo "${LIBLSL_CARGO[@]}" test --locked --features libcamera "$@"
fi
echo "##################################################################################" >&2
echo "# test: NO libcamera: the tests of source: libcamera will be reported as ignored #" >&2
echo "##################################################################################" >&2
exec cargo "${LIBLSL_CARGO[@]}" test --locked "$@"
