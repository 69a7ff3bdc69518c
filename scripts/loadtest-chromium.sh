#!/usr/bin/env bash
# Installs headless Chromium (Debian package "chromium") for the loadtest HTML
# report test. Idempotent: does nothing when a chromium binary is already on PATH.
# Usage: scripts/loadtest-chromium.sh   (needs root or sudo; prints the binary path)
set -euo pipefail

find_chromium() {
	for b in chromium chromium-browser google-chrome chrome; do
		if command -v "$b" >/dev/null 2>&1; then
			command -v "$b"
			return 0
		fi
	done
	return 1
}

if p=$(find_chromium); then
	echo "$p"
	exit 0
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "loadtest-chromium: need root or sudo to install chromium" >&2
		exit 1
	fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2 || true
$SUDO apt-get install -y -qq --no-install-recommends chromium >&2

find_chromium
