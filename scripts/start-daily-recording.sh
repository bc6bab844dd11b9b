#!/usr/bin/env bash
# The day's start on a rig, as with the old tool's start-daily-recording.sh: make today's
# folders, start hindsight with the given config, and print the ntfy commands to use.
#
#   scripts/start-daily-recording.sh                          # /etc/hindsight/config.yaml or defaults
#   scripts/start-daily-recording.sh --config lab.yaml --topic lab-a-7f3k2q
#   scripts/start-daily-recording.sh --background             # detach; log in today's folder
#
# Options:
#   --config FILE   the configuration (default: $HINDSIGHT_CONFIG, /etc/hindsight/config.yaml
#                   if it exists, else the built-in defaults)
#   --root DIR      recordings root (default: the config's storage.root)
#   --topic TOPIC   turn the ntfy trigger on with this topic (else the config's ntfy settings)
#   --server URL    the ntfy server for --topic (default: the config's, https://ntfy.sh)
#   --background    run in the background; the log goes to <root>/<YYYY_MM_DD>/hindsight.log
#   --              everything after is passed to `hindsight run` (e.g. --set buffer.duration=30)
#
# If a hindsight already answers on the config's API address (the systemd service, say),
# nothing new is started: its status and the ntfy commands are printed.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"

bin="${HINDSIGHT_BIN:-}"
if [ -z "$bin" ]; then
  if command -v hindsight >/dev/null 2>&1; then bin="$(command -v hindsight)"
  elif target="${CARGO_TARGET_DIR:-target}" && { [[ "$target" = /* ]] || target="$repo/$target"; } &&
       [ -x "$target/release/hindsight" ]; then bin="$target/release/hindsight"
  else echo "start-daily-recording: no hindsight found (install it, or cargo build --release)" >&2; exit 1
  fi
fi

config="${HINDSIGHT_CONFIG:-}"
[ -z "$config" ] && [ -e /etc/hindsight/config.yaml ] && config=/etc/hindsight/config.yaml
root=""; topic=""; server=""; background=no; extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config="$2"; shift 2 ;;
    --root) root="$2"; shift 2 ;;
    --topic) topic="$2"; shift 2 ;;
    --server) server="$2"; shift 2 ;;
    --background) background=yes; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "start-daily-recording: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

args=()
[ -n "$config" ] && args+=(--config "$config")
sets=()
[ -n "$root" ] && sets+=(--set "storage.root=$root")
if [ -n "$topic" ]; then
  sets+=(--set trigger.ntfy.enabled=true --set "trigger.ntfy.topic=$topic")
  [ -n "$server" ] && sets+=(--set "trigger.ntfy.server=$server")
fi
# What hindsight will use (defaults, file, overrides), as it reads them: `hindsight config`
# takes run's options, so what comes after `--` counts too (`-- --api 127.0.0.1:8790`: the
# folders, the address waited on and the commands printed are the run's).
cfg_extra=()
for a in "${extra[@]}"; do
  [ "$a" = --no-dashboard ] || cfg_extra+=("$a")
done
get() { "$bin" config "${args[@]}" "${sets[@]}" "${cfg_extra[@]}" "$1"; }
get storage.root >/dev/null || exit 2
root="$(get storage.root)"
api="$(get api.listen)"
ntfy_on="$(get trigger.ntfy.enabled)"
ntfy_server="$(get trigger.ntfy.server)"
ntfy_topic="$(get trigger.ntfy.topic)"
rig="$(get rig)"; [ "$rig" = null ] && rig="$(hostname)"

day="$(date +%Y_%m_%d)"
mkdir -p "$root/$day/video" "$root/$day/audio"
echo "today's folders: $root/$day/video and $root/$day/audio"

print_commands() {
  echo
  if [ "$ntfy_on" = true ]; then
    echo "Start and stop from a phone (ntfy app, topic $ntfy_topic on $ntfy_server) or a shell:"
    echo "  curl -d \"Start Recording\" $ntfy_server/$ntfy_topic"
    echo "  curl -d \"Stop Recording\" $ntfy_server/$ntfy_topic"
    echo "  curl -d \"start 60\" $ntfy_server/$ntfy_topic        # records 60 s, then stops"
    echo "  curl -d \"mark trial 1\" $ntfy_server/$ntfy_topic    # a mark in the recording"
    echo "  curl -d \"start @$rig\" $ntfy_server/$ntfy_topic     # only this rig, when several share the topic"
  else
    echo "ntfy is off in this config: start with --topic <your-topic> to control it from a phone."
  fi
  echo "On this machine: $bin ctl --api $api start | stop | status   ($bin dashboard --api $api to watch)"
}

if "$bin" ctl --api "$api" status >/dev/null 2>&1; then
  echo "hindsight is already running on $api:"
  "$bin" ctl --api "$api" status
  print_commands
  exit 0
fi

if [ "$background" = yes ]; then
  log="$root/$day/hindsight.log"
  nohup "$bin" run --no-dashboard "${args[@]}" "${sets[@]}" "${extra[@]}" >>"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do
    "$bin" ctl --api "$api" status >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { echo "hindsight did not start; its log ($log):" >&2; tail -n 20 "$log" >&2; exit 1; }
    sleep 0.1
  done
  "$bin" ctl --api "$api" status >/dev/null 2>&1 || { echo "hindsight does not answer on $api; log: $log" >&2; exit 1; }
  echo "hindsight is running (pid $pid), buffering; log: $log"
  echo "stop it with: kill $pid   (recordings are finished first)"
  print_commands
else
  print_commands
  echo
  exec "$bin" run "${args[@]}" "${sets[@]}" "${extra[@]}"
fi
