#!/usr/bin/env bash
# The whole test suite, as the README and CI run it. It fetches the real ntfy server the
# ntfy tests run (scripts/ntfy-server.sh, once) and builds the test libcamera (only its
# virtual camera, with our test patches; cached under ~/.cache, about 4 minutes the first
# time) with scripts/build-libcamera.sh and runs every test with --features libcamera
# against it. If libcamera cannot be built here, it says so loudly and runs the suite
# without the feature: the libcamera tests are then reported as ignored, with the reason.
# liblsl: the current one from scripts/get-liblsl.sh where it can be had (a wheel's, or
# built from source), else lsl-sys's bundled 1.13.1 (scripts/liblsl-env.sh).
# Without arguments (the whole suite), it then runs the suites that talk to liblsl again
# against the Raspberry Pis' liblsl 1.17.7 (below), builds hindsight for a Raspberry Pi's
# aarch64 and armv7 and runs armv7's unit tests under qemu-user (scripts/cross-check.sh:
# NOT RUN where the cross compilers or qemu-user are missing; `scripts/install-deps.sh
# --cross` installs them), and runs both builds as a rig does (tests/arm.rs).
#   scripts/test.sh [cargo test arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/liblsl-env.sh

# The real ntfy server the ntfy tests run (the Go server from Debian, unpacked under
# ~/.cache, nothing system-wide: scripts/ntfy-server.sh), fetched here the first time, so
# that this command alone runs the suite after scripts/quickstart.sh (and in CI).
if [ -z "${NTFY_BIN:-}" ] && ! ntfy=$(bash scripts/ntfy-server.sh install); then
  echo "##################################################################################" >&2
  echo "# test: the ntfy server could not be fetched (above): the ntfy tests will fail     #" >&2
  echo "##################################################################################" >&2
elif [ -z "${NTFY_BIN:-}" ]; then
  echo "test: ntfy server $ntfy"
fi

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
# The Raspberry Pis run liblsl 1.17.7 (aarch64's wheel; armv7's built from source), this
# machine the wheel's 1.18, and 1.17.7 has behaved differently (its inlet missed an
# outlet's close: README, the marker trigger). So the suites that talk to liblsl run again
# against 1.17.7, built here from the same source as armv7's (scripts/get-liblsl.sh, about
# 25 s once, then cached): the same binaries, the library swapped in by LD_LIBRARY_PATH,
# which a run path yields to; tests/pylsl.rs checks that hindsight said 1.17.
if [ -n "${LIBLSL_LIB:-}" ] && [ "$(basename "$(dirname "$LIBLSL_LIB")")" != 1.17.7 ]; then
  if pi=$(HINDSIGHT_LIBLSL_FROM=source bash scripts/get-liblsl.sh | tail -1) &&
     [ -e "$pi/lib/liblsl.so.2" ]; then
    echo "test: the LSL suites again, against liblsl 1.17.7 (the Raspberry Pis') from $pi"
    LD_LIBRARY_PATH="$pi/lib:$LD_LIBRARY_PATH" HINDSIGHT_LIBLSL="$pi/lib" \
      cargo "${LIBLSL_CARGO[@]}" test --locked "${features[@]}" \
      --test lsl --test pylsl --test wakeups
  else
    echo "##################################################################################" >&2
    echo "# test: the LSL suites against liblsl 1.17.7 (the Pis'): NOT RUN: it did not build #" >&2
    echo "##################################################################################" >&2
  fi
fi
if [ "$(uname -m)" = x86_64 ]; then
  cross=0
  bash scripts/cross-check.sh || cross=$?
  # Those builds run as a rig runs them, under qemu-user (tests/arm.rs: NOT RUN for a
  # build the cross check could not make), also after a unit test failed there: a run
  # says every failure it can.
  cargo "${LIBLSL_CARGO[@]}" test --locked "${features[@]}" --test arm -- --ignored
  if [ "$cross" -ne 0 ]; then
    echo "test: the cross check FAILED (above)" >&2
    exit "$cross"
  fi
else
  echo "test: cross-check NOT RUN: it builds for ARM from an x86_64 machine (this is $(uname -m))" >&2
fi
