#!/usr/bin/env bash
# stop-gcs.sh — stop the fake-gcs-server that start-gcs.sh recorded (only that PID).
set -uo pipefail
SERVICE=gcs
. "$(dirname "$0")/lib.sh"
lock_service
stop_service "$CACHE/bin/fake-gcs-server"
rm -f "$RUN/gcs.port"
