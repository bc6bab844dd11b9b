#!/usr/bin/env bash
# (The tests in tests/audio.rs start and stop it themselves; install-deps.sh installs
# its packages.)
# Gives a machine without a sound card a real capture device: a user-mode
# PulseAudio server with a sine-wave source as the default input, reached by
# ALSA's "default" device (and so by cpal) through the pulse plugin.
#
#   eval "$(audio-loopback.sh start [FREQ_HZ] [RATE])"   # exports XDG_RUNTIME_DIR / PULSE_SERVER
#   audio-loopback.sh continuous [FREQ_HZ]   # the default input delivers as a microphone does
#   audio-loopback.sh stop
#
# The sine source renders 2 s at a time, so its readers get audio in 2 s bursts.
# `continuous` makes the default input the null sink's monitor, with a tone playing
# into the sink: it delivers a few ms at a time (for measuring what reading costs).
#
# Needs Debian packages: pulseaudio pulseaudio-utils libasound2-plugins
# (`audio-loopback.sh deps` installs them with apt-get).
# To feed your own sound instead of the sine: `paplay file.wav` plays into the
# null sink "loop"; record from its monitor with `pactl set-default-source loop.monitor`.
set -euo pipefail

RUN=${AUDIO_LOOPBACK_HOME:-/tmp/audio-loopback}

deps() {
  apt-get install -y -q pulseaudio pulseaudio-utils libasound2-plugins >/dev/null
}

start() {
  local freq=${1:-440} rate=${2:-48000}
  mkdir -p -m 700 "$RUN"
  export XDG_RUNTIME_DIR=$RUN
  pulseaudio --check 2>/dev/null && { stop_quiet; }
  pulseaudio -n --daemonize=yes --exit-idle-time=-1 --disallow-exit --log-target=file:"$RUN/pulse.log" \
    --load=module-native-protocol-unix \
    --load="module-null-sink sink_name=loop rate=$rate" >/dev/null 2>&1
  for _ in $(seq 50); do pactl info >/dev/null 2>&1 && break; sleep 0.1; done
  pactl load-module module-sine-source source_name=sine rate="$rate" frequency="$freq" >/dev/null
  pactl set-default-source sine
  echo "export XDG_RUNTIME_DIR=$RUN"
  echo "export PULSE_SERVER=unix:$RUN/pulse/native"
}

continuous() {
  local freq=${1:-440}
  export XDG_RUNTIME_DIR=$RUN
  pactl load-module module-sine sink=loop frequency="$freq" >/dev/null
  pactl set-default-source loop.monitor
}

stop_quiet() { XDG_RUNTIME_DIR=$RUN pulseaudio --kill >/dev/null 2>&1 || true; }

case "${1:-}" in
  deps) deps ;;
  start) shift; start "$@" ;;
  continuous) shift; continuous "$@" ;;
  stop) stop_quiet ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
