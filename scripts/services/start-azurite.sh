#!/usr/bin/env bash
# start-azurite.sh — install (once, with npm) and start Azurite's Blob service (MIT,
# Microsoft's Azure Storage emulator) on loopback, in memory, telemetry off.
#   eval "$(scripts/services/start-azurite.sh)"   # exports BRAINY_TEST_AZURE_*
# Idempotent: a running server started earlier is reused. Progress on stderr, exports on
# stdout (also saved in $CACHE/services/azurite.env). Stop with scripts/services/stop-azurite.sh.
# Knobs: BRAINY_CI_CACHE, AZURITE_VERSION (3.35.0), AZURITE_HOST (127.0.0.1), AZURITE_PORT
# (10000, or the next free port).
set -euo pipefail
SERVICE=azurite
. "$(dirname "$0")/lib.sh"
VER=${AZURITE_VERSION:-3.35.0}
HOST=${AZURITE_HOST:-127.0.0.1}
DIR=$CACHE/azurite-$VER PIDF=$RUN/azurite.pid LOG=$RUN/azurite.log
# Azurite's fixed, publicly documented development account (not a secret).
ACCT=devstoreaccount1
KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
# Any HTTP status (403 for this unsigned request) means the service answers.
answers() { [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$HOST:$PORT/$ACCT?comp=list" || true) != 000 ]]; }
print_env() {
  cat <<ENV | tee "$RUN/azurite.env"
export BRAINY_TEST_AZURE_CONNSTR='DefaultEndpointsProtocol=http;AccountName=$ACCT;AccountKey=$KEY;BlobEndpoint=http://$HOST:$PORT/$ACCT;'
export BRAINY_TEST_AZURE_ENDPOINT=http://$HOST:$PORT/$ACCT
export BRAINY_TEST_AZURE_ACCOUNT=$ACCT
export BRAINY_TEST_AZURE_KEY='$KEY'
ENV
}

lock_service
if pid_is_ours "$PIDF" "$DIR" && [[ -f $RUN/azurite.port ]]; then
  PORT=$(cat "$RUN/azurite.port")
  if answers; then log "reusing azurite pid $(cat "$PIDF") on $HOST:$PORT"; print_env; exit 0; fi
fi
rm -f "$PIDF"

if [[ ! -f $DIR/node_modules/azurite/package.json ]]; then
  command -v npm >/dev/null || { log "npm not found in PATH (install Node.js 18+)"; exit 1; }
  log "npm install azurite@$VER (first time only, ~30 s) ..."; t=$SECONDS
  mkdir -p "$DIR"
  npm install --prefix "$DIR" --no-audit --no-fund --no-package-lock --no-update-notifier \
    --loglevel=error "azurite@$VER" >&2
  log "installed in $((SECONDS - t))s"
fi

PORT=$(pick_port "${AZURITE_PORT:-10000}")
# --skipApiVersionCheck/--loose: accept the newer API versions and headers of current SDKs.
# Azurite uses its working directory as workspace, so run it from $RUN.
cd "$RUN"
nohup "$DIR/node_modules/.bin/azurite-blob" --blobHost "$HOST" --blobPort "$PORT" \
  --inMemoryPersistence --disableTelemetry --skipApiVersionCheck --loose --silent \
  >"$LOG" 2>&1 </dev/null 9>&- &
echo $! >"$PIDF"; echo "$PORT" >"$RUN/azurite.port"; record_start
wait_up 30 answers
log "azurite $VER blob service up on http://$HOST:$PORT (pid $(cat "$PIDF"), log $LOG)"
print_env
