#!/usr/bin/env bash
# start-gcs.sh — install (once) and start fake-gcs-server (Apache-2.0), a Google Cloud
# Storage emulator, on loopback over plain HTTP with an in-memory backend; create the test bucket.
#   eval "$(scripts/services/start-gcs.sh)"   # exports STORAGE_EMULATOR_HOST-style BRAINY_TEST_GCS_*
# Idempotent: a running server started earlier is reused. Progress on stderr, exports on
# stdout (also saved in $CACHE/services/gcs.env). Stop with scripts/services/stop-gcs.sh.
# Knobs: BRAINY_CI_CACHE, FAKE_GCS_VERSION (v1.54.0), GCS_HOST (127.0.0.1), GCS_PORT (4443,
# or the next free port), GCS_BUCKET (brainy-test).
set -euo pipefail
SERVICE=gcs
. "$(dirname "$0")/lib.sh"
VER=${FAKE_GCS_VERSION:-v1.54.0}
HOST=${GCS_HOST:-127.0.0.1}
BUCKET=${GCS_BUCKET:-brainy-test}
BIN=$CACHE/bin/fake-gcs-server PIDF=$RUN/gcs.pid LOG=$RUN/gcs.log
answers() { [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$HOST:$PORT/storage/v1/b?project=test" || true) == 200 ]]; }
print_env() {
  cat <<ENV | tee "$RUN/gcs.env"
export BRAINY_TEST_GCS_EMULATOR_HOST=$HOST:$PORT
export BRAINY_TEST_GCS_BUCKET=$BUCKET
ENV
}

lock_service
if pid_is_ours "$PIDF" "$BIN" && [[ -f $RUN/gcs.port ]]; then
  PORT=$(cat "$RUN/gcs.port")
  if answers; then log "reusing fake-gcs-server pid $(cat "$PIDF") on $HOST:$PORT"; print_env; exit 0; fi
fi
rm -f "$PIDF"

go_install github.com/fsouza/fake-gcs-server "$VER" fake-gcs-server
PORT=$(pick_port "${GCS_PORT:-4443}")
nohup "$BIN" -scheme http -host "$HOST" -port "$PORT" -public-host "$HOST:$PORT" \
  -external-url "http://$HOST:$PORT" -backend memory -log-level error >"$LOG" 2>&1 </dev/null 9>&- &
echo $! >"$PIDF"; echo "$PORT" >"$RUN/gcs.port"; record_start
wait_up 30 answers
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  -d "{\"name\":\"$BUCKET\"}" "http://$HOST:$PORT/storage/v1/b?project=test" || true)
[[ $code == 200 || $code == 409 ]] || { log "create bucket $BUCKET -> HTTP $code"; exit 1; }
log "fake-gcs-server $VER up on http://$HOST:$PORT (pid $(cat "$PIDF"), log $LOG)"
print_env
