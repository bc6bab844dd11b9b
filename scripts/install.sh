#!/usr/bin/env bash
# Installs hindsight as a service on this machine (Debian 12, Raspberry Pi OS bookworm).
# Safe to run again: it updates the binary and the unit, and keeps your configuration.
#
#   sudo bash scripts/install.sh                      # build, install, then:
#   sudo systemctl enable --now hindsight             # (or pass --enable)
#
# What it does, each step only if needed:
#   1. builds the release binary (as the user who ran sudo, with their cargo), unless
#      --no-build or HINDSIGHT_BIN=/path/to/hindsight
#   2. installs it to <prefix>/bin (default /usr/local/bin), with hindsight-lsl-listen, and
#      the current liblsl it was linked against, if any, to <prefix>/lib/hindsight
#      (scripts/get-liblsl.sh: a wheel's, or built from source; where neither can be had
#      the bundled liblsl 1.13 is built in; a liblsl built from source also needs Debian's
#      libpugixml1v5, which stays installed with libpugixml-dev)
#   3. installs /etc/hindsight/config.yaml from config.yaml, recordings in --root
#      (default /var/lib/hindsight/recordings); an existing config is never overwritten
#   4. creates the system user `hindsight` (groups video and audio: cameras, microphones)
#   5. creates the recordings root, owned by that user
#   6. installs the unit /etc/systemd/system/hindsight.service, and a drop-in that makes
#      the recordings root writable when it is not under /var/lib/hindsight
#   7. reloads systemd (and with --enable: enables and (re)starts the service)
#
# Options: --root DIR  --prefix DIR  --no-build  --enable  --features LIST (e.g. libcamera)
# DESTDIR=/some/dir stages everything under that folder instead (for packaging and tests):
# no systemctl, no chown; the user is added to DESTDIR/etc/passwd if that file exists.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"

rec_root=/var/lib/hindsight/recordings
prefix=/usr/local
build=yes
enable=no
features=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) rec_root="$2"; shift 2 ;;
    --prefix) prefix="$2"; shift 2 ;;
    --no-build) build=no; shift ;;
    --enable) enable=yes; shift ;;
    --features) features="$2"; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$rec_root" in
  /*) ;;
  *) echo "install.sh: --root must be an absolute path, got $rec_root" >&2; exit 2 ;;
esac
dest="${DESTDIR:-}"
if [ -z "$dest" ] && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run it as root (sudo bash scripts/install.sh), or set DESTDIR to stage" >&2
  exit 2
fi
say() { echo "install: $*"; }

# 1. The binary.
bin="${HINDSIGHT_BIN:-}"
if [ -z "$bin" ]; then
  # Where cargo puts it (CARGO_TARGET_DIR, if set, is relative to the repository).
  target="${CARGO_TARGET_DIR:-target}"
  [[ "$target" = /* ]] || target="$repo/$target"
  bin="$target/release/hindsight"
  if [ "$build" = yes ] && [[ ",$features," == *",libcamera,"* ]]; then
    # Raspberry Pi cameras: the build links the system's libcamera, 0.4 to 0.7
    # (Raspberry Pi OS bookworm has 0.5, trixie 0.7).
    if ! lcv=$(pkg-config --modversion libcamera 2>/dev/null); then
      echo "install.sh: --features libcamera needs libcamera's development files, which this machine lacks: sudo apt install libcamera-dev (Raspberry Pi OS bookworm or later)" >&2
      exit 1
    fi
    lcmm=$(echo "$lcv" | cut -d. -f1,2)
    if [ "$(printf '0.4\n%s\n' "$lcmm" | sort -V | head -1)" != 0.4 ] ||
       [ "$(printf '0.7\n%s\n' "$lcmm" | sort -V | tail -1)" != 0.7 ]; then
      echo "install.sh: libcamera $lcv is installed; hindsight's libcamera support builds with libcamera 0.4 to 0.7 (use source: command with rpicam-vid, or a supported libcamera)" >&2
      exit 1
    fi
    say "libcamera $lcv"
  fi
  if [ "$build" = yes ]; then
    # rustup installs cargo for the user, not for root: then build as that user.
    as_user=()
    if ! command -v cargo >/dev/null 2>&1; then
      if [ -z "${SUDO_USER:-}" ]; then
        echo "install.sh: cargo not found: install Rust (rustup), or build first and pass --no-build" >&2
        exit 1
      fi
      say "building as $SUDO_USER"
      # A login shell, for the PATH to the user's cargo.
      as_user=(runuser -u "$SUDO_USER" -- bash -lc 'exec "$@"' build)
    fi
    # A current liblsl where one can be had (scripts/get-liblsl.sh, in the builder's
    # cache), installed beside the binary and found through its run path; else the lsl
    # crate's bundled 1.13.
    cargo_args=(build --release --locked)
    rpath=""
    if out=$("${as_user[@]}" bash "$repo/scripts/get-liblsl.sh") &&
       lp=$(printf '%s\n' "$out" | tail -1) && [ -f "$lp/cargo.toml" ]; then
      cargo_args=(--config "$lp/cargo.toml" "${cargo_args[@]}")
      rpath="$prefix/lib/hindsight"
      LIBLSL_LIB="$lp/lib"
      say "liblsl: $(basename "$lp") from $lp"
    else
      say "liblsl: lsl-sys's bundled liblsl 1.13.1 (see above why not a current one)"
    fi
    [ -n "$features" ] && cargo_args+=(--features "$features")
    # build.rs gives the binary this run path (where step 2 puts the library).
    (cd "$repo" && "${as_user[@]}" env HINDSIGHT_RPATH="$rpath" cargo "${cargo_args[@]}")
  fi
fi
[ -x "$bin" ] || { echo "install.sh: no binary at $bin (build it, or set HINDSIGHT_BIN)" >&2; exit 1; }
bindir="$prefix/bin"

# 2. Install the binaries, and the liblsl the binary was linked against if it is not the
# bundled one (HINDSIGHT_LIBLSL: set by scripts/liblsl-env.sh).
if readelf -d "$bin" 2>/dev/null | grep -q 'NEEDED.*liblsl\.so'; then
  lib="${LIBLSL_LIB:-${HINDSIGHT_LIBLSL:-}}"
  [ -n "$lib" ] && [ -e "$lib/liblsl.so.2" ] || {
    echo "install.sh: $bin needs liblsl.so.2 and no liblsl folder is known (run scripts/get-liblsl.sh and source its env.sh)" >&2
    exit 1
  }
  install -d "$dest$prefix/lib/hindsight"
  install -m 644 "$(readlink -f "$lib/liblsl.so.2")" "$dest$prefix/lib/hindsight/"
  ln -sf "$(basename "$(readlink -f "$lib/liblsl.so.2")")" "$dest$prefix/lib/hindsight/liblsl.so.2"
  say "liblsl: $prefix/lib/hindsight/liblsl.so.2 ($(basename "$(readlink -f "$lib/liblsl.so.2")"))"
fi
install -d "$dest$bindir"
install -m 755 "$bin" "$dest$bindir/hindsight"
listen="$(dirname "$bin")/hindsight-lsl-listen"
[ -x "$listen" ] && install -m 755 "$listen" "$dest$bindir/hindsight-lsl-listen"
# The installed binary, run from where it is staged (its run path names the final place).
run_bin() {
  LD_LIBRARY_PATH="$dest$prefix/lib/hindsight${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$dest$bindir/hindsight" "$@"
}
say "binary: $bindir/hindsight ($(run_bin --version))"
install -D -m 644 "$repo/README.md" "$dest$prefix/share/doc/hindsight/README.md"

# 3. The configuration: the documented reference, with the recordings root set.
etc="$dest/etc/hindsight"
install -d -m 755 "$etc"
if [ -e "$etc/config.yaml" ]; then
  say "config: kept your $etc/config.yaml"
else
  sed "s#^  root: ./recordings\$#  root: $rec_root#" "$repo/config.yaml" > "$etc/config.yaml.new"
  grep -q "^  root: $rec_root\$" "$etc/config.yaml.new" \
    || { echo "install.sh: could not set storage.root in the config" >&2; rm -f "$etc/config.yaml.new"; exit 1; }
  chmod 644 "$etc/config.yaml.new"
  mv "$etc/config.yaml.new" "$etc/config.yaml"
  say "config: $etc/config.yaml (recordings in $rec_root): set your cameras and ntfy topic there"
fi
run_bin config --config "$etc/config.yaml" storage.root >/dev/null \
  || { echo "install.sh: $etc/config.yaml is not valid (see above)" >&2; exit 1; }

# 4. The service user, in the groups that may open cameras and microphones.
passwd="$dest/etc/passwd"
user_args=(--system --user-group --home-dir /var/lib/hindsight --no-create-home
           --shell /usr/sbin/nologin --comment "hindsight recorder")
if [ -z "$dest" ]; then
  for g in video audio; do getent group "$g" >/dev/null || groupadd --system "$g"; done
  if id hindsight >/dev/null 2>&1; then
    usermod -a -G video,audio hindsight
    say "user: hindsight exists (groups: $(id -nG hindsight))"
  else
    useradd "${user_args[@]}" --groups video,audio hindsight
    say "user: created hindsight (groups: $(id -nG hindsight))"
  fi
elif [ -e "$passwd" ]; then
  if grep -q '^hindsight:' "$passwd"; then
    usermod --prefix "$dest" -a -G video,audio hindsight
    say "user: hindsight exists in $passwd"
  else
    useradd --prefix "$dest" "${user_args[@]}" --groups video,audio hindsight
    say "user: created hindsight in $passwd"
  fi
else
  say "user: skipped (no $passwd in DESTDIR)"
fi

# 5. The recordings root.
install -d -m 755 "$dest/var/lib/hindsight" "$dest$rec_root"
if [ -z "$dest" ]; then
  chown hindsight:hindsight /var/lib/hindsight "$rec_root"
fi
say "recordings: $rec_root"

# 6. The unit, pointing at the installed binary, and the recordings root made writable.
unit_dir="$dest/etc/systemd/system"
install -d "$unit_dir"
sed "s#/usr/local/bin/hindsight#$bindir/hindsight#g; s#/usr/local/share/doc/hindsight#$prefix/share/doc/hindsight#" \
  "$repo/systemd/hindsight.service" > "$unit_dir/hindsight.service.new"
mv "$unit_dir/hindsight.service.new" "$unit_dir/hindsight.service"
chmod 644 "$unit_dir/hindsight.service"
dropin="$unit_dir/hindsight.service.d/recordings.conf"
case "$rec_root/" in
  /var/lib/hindsight/*) rm -f "$dropin" ;;
  *)
    install -d "$(dirname "$dropin")"
    # RequiresMountsFor: started only once the disk holding the root is mounted (when
    # /etc/fstab names it); without it, at boot, the root would be made and recorded
    # to on the disk below, hidden once the recordings disk is mounted over it.
    printf '# Written by scripts/install.sh: the recordings root.\n[Unit]\nRequiresMountsFor=%s\n[Service]\nReadWritePaths=%s\n' \
      "$rec_root" "$rec_root" > "$dropin"
    say "unit: $dropin makes $rec_root writable, and waits for its disk to be mounted"
    ;;
esac
say "unit: $unit_dir/hindsight.service"

# 7. systemd.
if [ -z "$dest" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  if [ "$enable" = yes ]; then
    systemctl enable hindsight
    systemctl restart hindsight
    say "service enabled and (re)started: systemctl status hindsight"
  else
    say "start it with: sudo systemctl enable --now hindsight"
  fi
elif [ -z "$dest" ]; then
  say "systemd is not running here: start it by hand with $bindir/hindsight run --config /etc/hindsight/config.yaml"
fi
say "check the rig with: $bindir/hindsight check --config /etc/hindsight/config.yaml"
