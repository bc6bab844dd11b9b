#!/usr/bin/env bash
# Installs and starts a real ntfy server (the Go server, packaged by Debian's
# next release) on loopback, for tests and demos that need a genuine ntfy peer.
# The tests (tests/ntfy.rs) run the installed binary themselves, with their own
# settings (ports, access control); scripts/test.sh runs `install`.
#
#   ntfy-server.sh install            # fetch the .deb once into $NTFY_HOME (no system change)
#   ntfy-server.sh start [PORT]       # start on 127.0.0.1:PORT (default 18090), print its URL
#   ntfy-server.sh stop               # stop the server started by this script
#
# The package mirror is taken from this machine's own apt sources, so the
# script works wherever apt works. Nothing is installed system-wide: the
# package is unpacked under $NTFY_HOME.
set -euo pipefail

NTFY_HOME=${NTFY_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/ntfy-server}
SUITE=${NTFY_SUITE:-trixie}
BIN="$NTFY_HOME/root/usr/bin/ntfy"

mirror() {
  local uri
  uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  if [ -z "$uri" ]; then
    uri=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  fi
  [ -n "$uri" ] || { echo "ntfy-server: no Debian mirror found in apt sources" >&2; exit 1; }
  echo "$uri"
}

install() {
  [ -x "$BIN" ] && { echo "$BIN"; return; }
  mkdir -p "$NTFY_HOME/apt/lists/partial" "$NTFY_HOME/apt/parts" "$NTFY_HOME/debs"
  cat >"$NTFY_HOME/apt/parts/next.sources" <<SRC
Types: deb
URIs: $(mirror)
Suites: $SUITE
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  local opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$NTFY_HOME/apt/parts"
              -o "Dir::State::Lists=$NTFY_HOME/apt/lists" -o Debug::NoLocking=1 -q)
  apt-get "${opts[@]}" update >/dev/null
  (cd "$NTFY_HOME/debs" && apt-get "${opts[@]}" download ntfy >/dev/null)
  dpkg -x "$NTFY_HOME"/debs/ntfy_*.deb "$NTFY_HOME/root"
  "$BIN" --help >/dev/null
  echo "$BIN"
}

start() {
  local port=${1:-18090}
  install >/dev/null
  mkdir -p "$NTFY_HOME/run"
  cat >"$NTFY_HOME/run/server.yml" <<YML
listen-http: "127.0.0.1:$port"
base-url: "http://127.0.0.1:$port"
cache-file: "$NTFY_HOME/run/cache.db"
cache-duration: "12h"
keepalive-interval: "${NTFY_KEEPALIVE:-45s}"
YML
  "$BIN" serve --config "$NTFY_HOME/run/server.yml" >"$NTFY_HOME/run/server.log" 2>&1 &
  echo $! >"$NTFY_HOME/run/pid"
  for _ in $(seq 50); do
    if curl -fsS "http://127.0.0.1:$port/v1/health" >/dev/null 2>&1; then
      echo "http://127.0.0.1:$port"; return
    fi
    sleep 0.1
  done
  echo "ntfy-server: did not come up; see $NTFY_HOME/run/server.log" >&2; exit 1
}

stop() {
  local pidfile="$NTFY_HOME/run/pid"
  [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  rm -f "$pidfile"
}

case "${1:-}" in
  install) install ;;
  start) shift; start "$@" ;;
  stop) stop ;;
  *) sed -n '2,9p' "$0"; exit 2 ;;
esac
