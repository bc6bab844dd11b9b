#!/usr/bin/env bash
# The benchmark of SPEC section 10: builds a release binary and runs `hindsight bench`,
# which measures the pipeline and runs `ffmpeg -c copy` (MJPEG -> MKV) on the same frames,
# on the same core, in the same run, printing the ratio.
#   bash scripts/bench.sh              # the figures (about a minute)
#   bash scripts/bench.sh --quick      # a quick look
#   bash scripts/bench.sh --soak 600   # 10 minutes of the real recorder: drops, missing frames, CPU
set -euo pipefail
cd "$(dirname "$0")/.."
command -v ffmpeg >/dev/null || bash scripts/install-deps.sh
. scripts/liblsl-env.sh
cargo "${LIBLSL_CARGO[@]}" build --release --locked
exec "${CARGO_TARGET_DIR:-target}/release/hindsight" bench "$@"
