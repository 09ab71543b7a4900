#!/usr/bin/env bash
# Install Debian's chromium (used by the browser tests of the leaderboard site) when missing.
# Needs root and apt-get; exits 0 when chromium is already there.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium.sh: chromium is missing and cannot be installed (needs root and apt-get)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium
command -v chromium
