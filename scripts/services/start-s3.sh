#!/usr/bin/env bash
# start-s3.sh — install (once) and start versitygw, an S3-compatible server (Apache-2.0), on
# loopback with a posix backend in a fresh data directory, and create the test bucket.
#   eval "$(scripts/services/start-s3.sh)"   # exports BRAINY_TEST_S3_*
# Idempotent: a running server started earlier is reused. Progress on stderr, exports on
# stdout (also saved in $CACHE/services/s3.env). Stop with scripts/services/stop-s3.sh.
# Knobs: BRAINY_CI_CACHE, VERSITYGW_VERSION (v1.8.0), S3_HOST (127.0.0.1), S3_PORT (9000, or
# the next free port), S3_ACCESS_KEY, S3_SECRET_KEY, S3_BUCKET (brainy-test).
set -euo pipefail
SERVICE=s3
. "$(dirname "$0")/lib.sh"
VER=${VERSITYGW_VERSION:-v1.8.0}
HOST=${S3_HOST:-127.0.0.1}
AK=${S3_ACCESS_KEY:-brainytest} SK=${S3_SECRET_KEY:-brainytestsecret} REGION=us-east-1
BUCKET=${S3_BUCKET:-brainy-test}
BIN=$CACHE/bin/versitygw PIDF=$RUN/s3.pid LOG=$RUN/s3.log DATA=$RUN/s3-data

# Signed S3 request with curl's built-in SigV4 (versitygw requires the payload hash header).
s3curl() {
  curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:$REGION:s3" --user "$AK:$SK" \
    -H 'x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' "$@" || true
}
answers() { [[ $(s3curl "http://$HOST:$PORT/") == 200 ]]; }
print_env() {
  cat <<ENV | tee "$RUN/s3.env"
export BRAINY_TEST_S3_ENDPOINT=http://$HOST:$PORT
export BRAINY_TEST_S3_ACCESS_KEY=$AK
export BRAINY_TEST_S3_SECRET_KEY=$SK
export BRAINY_TEST_S3_REGION=$REGION
export BRAINY_TEST_S3_BUCKET=$BUCKET
ENV
}

lock_service
if pid_is_ours "$PIDF" "$BIN" && [[ -f $RUN/s3.port ]]; then
  PORT=$(cat "$RUN/s3.port")
  if answers; then log "reusing versitygw pid $(cat "$PIDF") on $HOST:$PORT"; print_env; exit 0; fi
fi
rm -f "$PIDF"

go_install github.com/versity/versitygw/cmd/versitygw "$VER" versitygw
PORT=$(pick_port "${S3_PORT:-9000}")
rm -rf "$DATA"; mkdir -p "$DATA"
ROOT_ACCESS_KEY_ID=$AK ROOT_SECRET_ACCESS_KEY=$SK \
  nohup "$BIN" --port "$HOST:$PORT" --region "$REGION" --quiet posix "$DATA" >"$LOG" 2>&1 </dev/null 9>&- &
echo $! >"$PIDF"; echo "$PORT" >"$RUN/s3.port"; record_start
wait_up 60 answers
code=$(s3curl -X PUT "http://$HOST:$PORT/$BUCKET")
[[ $code == 200 || $code == 409 ]] || { log "create bucket $BUCKET -> HTTP $code"; exit 1; }
log "versitygw $VER up on http://$HOST:$PORT (pid $(cat "$PIDF"), log $LOG)"
print_env
