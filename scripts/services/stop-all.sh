#!/usr/bin/env bash
# stop-all.sh — stop every server the start-*.sh scripts (or the tests) started; safe to
# run at any time, e.g. after an interrupted test run.
set -uo pipefail
d=$(dirname "$0")
"$d/stop-s3.sh"; "$d/stop-azurite.sh"; "$d/stop-gcs.sh"
