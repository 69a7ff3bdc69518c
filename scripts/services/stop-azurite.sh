#!/usr/bin/env bash
# stop-azurite.sh — stop the Azurite that start-azurite.sh recorded (only that PID).
set -uo pipefail
SERVICE=azurite
. "$(dirname "$0")/lib.sh"
lock_service
stop_service "$CACHE/azurite-"
rm -f "$RUN/azurite.port"
