#!/usr/bin/env bash
# Installs the system packages hindsight needs to build and to be tested, on Debian 12 or
# Raspberry Pi OS (bookworm). Idempotent. Run as root or with sudo available.
#   build:  cmake, nasm (libjpeg-turbo, built by the turbojpeg crate), pkg-config, a C/C++ compiler
#           libasound2-dev (ALSA, for cpal's audio input)
#           libpugixml-dev (for liblsl, where scripts/get-liblsl.sh builds it from source: a
#           32-bit Raspberry Pi OS)
#           libclang-dev (bindgen generates the V4L2 bindings of the v4l crate from the
#           kernel's videodev2.h, which linux-libc-dev provides)
#   tests:  ffmpeg/ffprobe and mkvtoolnix (mkvmerge, mkvinfo) judge the recordings;
#           python3 runs tools/check-recording.py; sox reads WAV files;
#           python3-pip fetches the current liblsl (scripts/get-liblsl.sh: pylsl's wheel)
#           and python3-venv holds pylsl for the LSL interop test (scripts/pylsl-venv.sh);
#           pulseaudio, pulseaudio-utils and libasound2-plugins give a machine without a
#           sound card a real capture device (scripts/audio-loopback.sh);
#           systemd (systemd-analyze verify checks the unit file); tmux drives the
#           dashboard in a real terminal; strace sees which file descriptors are synced;
#           chromium (headless) is the browser on the rig that other sites' pages run in,
#           and, driven through chromium-driver, the browser the web page is tested in;
#           e2fsprogs (mkfs.ext4, e2fsck, debugfs) makes the real ext4 disk that turns
#           read-only under a recording (those tests need root; without it they say NOT RUN);
#           exfatprogs (mkfs.exfat) and exfat-fuse make the exFAT card (SD cards over 32 GB,
#           USB disks) that tests/disk.rs records onto, through FUSE (root too)
#   --cross (x86_64 only): the C/C++ cross compilers and ALSA's headers for arm64 and armhf
#           (their architectures added to dpkg, which brings their C libraries), pugixml's
#           for armhf (liblsl, built for armv7), and qemu-user to run what is built, for
#           scripts/cross-check.sh and tests/arm.rs: a Raspberry Pi's builds, made and run
#           here (CI installs them)
set -euo pipefail

cross=no
[ "${1:-}" = --cross ] && cross=yes

packages=(build-essential cmake nasm pkg-config libasound2-dev libpugixml-dev libclang-dev linux-libc-dev ffmpeg mkvtoolnix python3 python3-pip python3-venv curl
          debian-archive-keyring sox pulseaudio pulseaudio-utils libasound2-plugins systemd tmux strace chromium chromium-driver e2fsprogs
          exfatprogs exfat-fuse)

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

not_installed() {
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

mapfile -t missing < <(not_installed "${packages[@]}")
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The cross compilers last, and not fatal: a mirror that is mid-sync for arm64 or armhf
# (apt-get update fails then) must not stop the tests; scripts/cross-check.sh then says
# NOT RUN.
if [ "$cross" = yes ] && [ "$(uname -m)" = x86_64 ]; then
  mapfile -t missing < <(not_installed crossbuild-essential-arm64 crossbuild-essential-armhf \
    libasound2-dev:arm64 libasound2-dev:armhf libpugixml-dev:armhf qemu-user)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing (cross compilers for a Raspberry Pi's builds): ${missing[*]}"
    for a in arm64 armhf; do
      dpkg --print-foreign-architectures | grep -qx "$a" || $sudo dpkg --add-architecture "$a"
    done
    if ! { $sudo apt-get update -qq &&
           DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
             "${missing[@]}"; }; then
      echo "install-deps: the cross compilers could not be installed (above):" \
           "scripts/cross-check.sh will say NOT RUN" >&2
    fi
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is not installed: install Rust with rustup (https://rustup.rs), then run this again" >&2
  exit 1
fi
