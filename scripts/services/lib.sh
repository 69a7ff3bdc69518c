#!/usr/bin/env bash
# lib.sh — shared by the start-*/stop-* scripts in this directory; source it, don't run it.
#
# Layout under the cache directory ($BRAINY_CI_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/brainy-ci),
# kept between runs so that each server is installed once per version:
#   bin/<server>, bin/<server>.version   go-installed servers
#   azurite-<version>/node_modules       npm-installed Azurite
#   services/<name>.pid .env .log .lock .owner   state of the running server <name>
# Every start script holds services/<name>.lock (flock) while it installs and starts, so
# concurrent callers (two test packages at once) end up sharing one server.

CACHE=${BRAINY_CI_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/brainy-ci}
mkdir -p "$CACHE/bin" "$CACHE/services"
CACHE=$(cd "$CACHE" && pwd)
RUN=$CACHE/services

log() { echo "[$SERVICE] $*" >&2; }

# lock_service: take the per-service lock on fd 9 until the script exits (max 8 min:
# a cold install of a Go server takes about 2 min on two cores).
lock_service() {
  exec 9>"$RUN/$SERVICE.lock"
  flock -w 480 9 || { log "timed out waiting for $RUN/$SERVICE.lock"; exit 1; }
}

# pid_is_ours PIDFILE MUST_CONTAIN: the recorded process runs and its command line contains
# MUST_CONTAIN (guards against a recycled PID).
pid_is_ours() {
  local pid
  [[ -f $1 ]] || return 1
  pid=$(cat "$1")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# port_free PORT: nothing accepts TCP connections on $HOST:PORT.
port_free() { ! (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# pick_port PREFERRED: PREFERRED if free, else the next free port above it.
pick_port() {
  local p=$1
  while ! port_free "$p"; do
    p=$((p + 1))
    ((p < $1 + 200)) || { log "no free port in $1..$p"; exit 1; }
  done
  echo "$p"
}

# go_install PKG VERSION NAME: build PKG@VERSION into $CACHE/bin/NAME once per version.
go_install() {
  local pkg=$1 ver=$2 name=$3 t=$SECONDS
  if [[ -x $CACHE/bin/$name && $(cat "$CACHE/bin/$name.version" 2>/dev/null) == "$ver" ]]; then
    return 0
  fi
  command -v go >/dev/null || { log "go not found in PATH"; exit 1; }
  log "go install $pkg@$ver (first time only, 1-3 min) ..."
  (cd "$CACHE" && GOBIN=$CACHE/bin GOFLAGS= GOWORK=off GO111MODULE=on CGO_ENABLED=0 go install "$pkg@$ver") >&2
  echo "$ver" >"$CACHE/bin/$name.version"
  log "installed $name $ver in $((SECONDS - t))s"
}

# wait_up SECONDS CHECK...: poll CHECK every 0.1 s until it succeeds; fail if our server died.
wait_up() {
  local n=$(($1 * 10)); shift
  for _ in $(seq 1 "$n"); do
    "$@" && return 0
    kill -0 "$(cat "$RUN/$SERVICE.pid")" 2>/dev/null || { log "server died:"; cat "$RUN/$SERVICE.log" >&2; exit 1; }
    sleep 0.1
  done
  log "no answer after $((n / 10))s"; cat "$RUN/$SERVICE.log" >&2; exit 1
}

# record_start: note who started the server (BRAINY_SERVICE_OWNER, default "script"); the
# tests (objstoretest.Use) start with owner "go-test" and only ever stop servers they own.
record_start() { echo "${BRAINY_SERVICE_OWNER:-script}" >"$RUN/$SERVICE.owner"; }

# stop_service MUST_CONTAIN: TERM (then KILL after 10 s) the one recorded PID, if it is ours.
stop_service() {
  local pidf=$RUN/$SERVICE.pid pid
  if pid_is_ours "$pidf" "$1"; then
    pid=$(cat "$pidf")
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    log "stopped pid $pid"
  else
    log "not running (or the recorded pid is not ours); nothing stopped"
  fi
  rm -f "$pidf" "$RUN/$SERVICE.env" "$RUN/$SERVICE.owner"
}
