#!/usr/bin/env bash
# Try hindsight on this machine in one command: install what is missing, build, run the
# recorder on its built-in defaults (a synthetic camera, and a synthetic tone when there is
# no microphone: no hardware needed), let it fill
# its pre-trigger buffer, trigger a recording through the local API (the same path
# `hindsight ctl`, scripts and the dashboard use), stop it, and show the file.
#
#   bash scripts/quickstart.sh            # recordings in ./recordings
#   HINDSIGHT_ROOT=/data/rec HINDSIGHT_PORT=8790 bash scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
. scripts/liblsl-env.sh
cargo "${LIBLSL_CARGO[@]}" build --release --locked
# Where cargo put it (CARGO_TARGET_DIR, if set, is relative to here).
target="${CARGO_TARGET_DIR:-target}"
[[ "$target" = /* ]] || target="$PWD/$target"
bin="$target/release/hindsight"
root="${HINDSIGHT_ROOT:-$PWD/recordings}"
api="127.0.0.1:${HINDSIGHT_PORT:-8787}"

echo
echo "== starting: $bin run --no-dashboard --root $root --api $api"
"$bin" run --no-dashboard --root "$root" --api "$api" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  "$bin" ctl --api "$api" status >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { echo "hindsight did not start (see above)" >&2; exit 1; }
  sleep 0.1
done

echo
echo "== buffering for 5 s (the last 20 s are always kept in RAM)"
sleep 5
"$bin" ctl --api "$api" status

echo
echo "== hindsight ctl start 3   (records the buffer, then 3 s live, then stops by itself)"
out=$("$bin" ctl --api "$api" start 3)
echo "$out"
file=$(echo "$out" | sed -n 's/^  //p' | head -n 1)
sleep 4

echo
echo "== stopping the recorder (SIGTERM: files are finished, then it exits)"
kill -TERM "$pid"
wait "$pid" || true
trap - EXIT

echo
echo "== the recording"
ls -l "$file" "${file%.mkv}.frames.csv" "${file%.mkv}.events.csv"
frames=$(ffprobe -v error -count_frames -select_streams v:0 \
  -show_entries stream=nb_read_frames -of csv=p=0 "$file")
duration=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$file")
first=$(ffprobe -v error -show_entries format_tags=LSL_FIRST_FRAME_TIME -of csv=p=0 "$file")
echo "frames: $frames (sidecar rows: $(($(wc -l < "${file%.mkv}.frames.csv") - 1)))"
echo "duration: $duration s; first frame on the LSL clock: $first s"
# The audio beside it (the microphone, or the synthetic tone on a machine without one).
stem=$(basename "${file%.mkv}"); stem=${stem%_*}
wav="$(dirname "$(dirname "$file")")/audio/$stem.wav"
if [ -f "$wav" ]; then
  echo "audio: $wav, $(ffprobe -v error -show_entries format=duration -of csv=p=0 "$wav") s"
fi
echo
echo "Play it with any player (e.g. ffplay or vlc). Run it yourself with"
echo "  $bin run                      # the dashboard: S start, X stop, Q quit; or in another terminal:"
echo "  $bin ctl start | stop | clip 10 | mark 'trial 1' | status"
echo "  $bin check                    # is this machine ready to record?"
