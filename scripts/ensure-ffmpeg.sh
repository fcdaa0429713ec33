#!/usr/bin/env bash
# Makes sure ffmpeg and ffprobe are on PATH: installs Debian's package when
# running as root on a Debian-like system, otherwise says how in one line.
set -euo pipefail
if command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ffmpeg with apt-get (about a minute)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq ffmpeg >/dev/null
  exit 0
fi
echo "ffmpeg/ffprobe missing: install them (Debian/Ubuntu: sudo apt-get install -y ffmpeg; macOS: brew install ffmpeg) and run make again" >&2
exit 1
