#!/usr/bin/env bash
# stop-s3.sh — stop the versitygw that start-s3.sh recorded (only that PID) and delete its data.
set -uo pipefail
SERVICE=s3
. "$(dirname "$0")/lib.sh"
lock_service
stop_service "$CACHE/bin/versitygw"
rm -rf "$RUN/s3-data" "$RUN/s3.port"
