#!/usr/bin/env bash
# Measures brainy-loadtest against wrk on this machine, against one nginx
# started here (temp prefix and config, 127.0.0.1, stopped by PID on exit):
#   1. maximum closed-loop throughput of both tools on a static file,
#      alternating ROUNDS times, best of each (pass: brainy-loadtest >= 0.9x wrk);
#   2. brainy-loadtest at a fixed rate (open model) against nginx's own
#      $request_time for the same requests: a static file, and, when the
#      echo module is available, a location that sleeps 5 ms.
# Bounded: every run lasts DUR (default 10s). Needs root (or sudo) only to
# apt-get install wrk, nginx and libnginx-mod-http-echo when missing.
#
# Usage: scripts/loadtest-vs-wrk.sh        (env: DUR CONNS ROUNDS RATE)
set -euo pipefail

DUR=${DUR:-10s}
CONNS=${CONNS:-32}
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-2000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

SUDO=""
[ "$(id -u)" = "0" ] || SUDO="sudo"
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_http_echo_module.so ] || need+=(libnginx-mod-http-echo)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq >&2 || true
	# The echo module is optional: install the rest even if it is unavailable.
	$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2 ||
		$SUDO apt-get install -y -qq --no-install-recommends wrk nginx >&2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

TMP=$(mktemp -d /tmp/loadtest-vs-wrk.XXXXXX)
NGINX_PID=""
cleanup() {
	if [ -n "$NGINX_PID" ] && kill -0 "$NGINX_PID" 2>/dev/null; then
		kill "$NGINX_PID" 2>/dev/null || true
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.2; done
		kill -9 "$NGINX_PID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

(cd "$ROOT" && go build -o "$TMP/brainy-loadtest" ./cmd/brainy-loadtest)
BLT="$TMP/brainy-loadtest"

PORT=""
for p in $(seq 18080 18180); do
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PORT=$p; break; fi
done
[ -n "$PORT" ] || { echo "no free port in 18080-18180" >&2; exit 1; }

mkdir -p "$TMP/html" "$TMP/logs"
head -c 1024 /dev/urandom | base64 -w 76 >"$TMP/html/index.html" # ~1.4 KB static file
ECHO_LOAD=""
ECHO_LOC=""
if [ -e /usr/lib/nginx/modules/ngx_http_echo_module.so ]; then
	ECHO_LOAD="load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;"
	ECHO_LOC="location = /sleep5ms { access_log $TMP/logs/sleep5ms.log timing; echo_sleep 0.005; echo ok; }"
fi
cat >"$TMP/nginx.conf" <<CONF
$ECHO_LOAD
worker_processes 1;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  log_format timing '\$request_time';
  keepalive_requests 100000000;
  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:$PORT backlog=4096;
    root $TMP/html;
    location = /index.html { }
    location = /timed.html { alias $TMP/html/index.html; access_log $TMP/logs/static.log timing; }
    $ECHO_LOC
  }
}
CONF
"$NGINX" -p "$TMP" -c "$TMP/nginx.conf" &
NGINX_PID=$!
for _ in $(seq 50); do
	curl -fs -o /dev/null "http://127.0.0.1:$PORT/index.html" 2>/dev/null && break
	sleep 0.1
done
URL="http://127.0.0.1:$PORT/index.html"

json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$@"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)"
echo "nginx:   $("$NGINX" -v 2>&1 | cut -d/ -f2), 1 worker, static file $(stat -c %s "$TMP/html/index.html") B at $URL"
echo "wrk:     $(wrk -v 2>&1 | head -1 | cut -d' ' -f2)"
echo
echo "== 1. maximum closed-loop throughput: $CONNS connections, $DUR per run, $ROUNDS rounds"
best_wrk=0
best_blt=0
for r in $(seq "$ROUNDS"); do
	w=$(wrk -t2 -c"$CONNS" -d"$DUR" "$URL" | awk '/Requests\/sec/ {print $2}')
	"$BLT" -quiet -c "$CONNS" -d "$DUR" -o "$TMP/closed-$r.json" "$URL" >/dev/null
	b=$(json "$TMP/closed-$r.json" 'round(d["throughput"], 1)')
	b50=$(json "$TMP/closed-$r.json" 'd["summary"]["p50_us"]')
	b99=$(json "$TMP/closed-$r.json" 'd["summary"]["p99_us"]')
	echo "round $r: wrk $w req/s | brainy-loadtest $b req/s (p50 ${b50}us p99 ${b99}us)"
	best_wrk=$(python3 -c "print(max($best_wrk, $w))")
	best_blt=$(python3 -c "print(max($best_blt, $b))")
done
ratio=$(python3 -c "print(f'{$best_blt / $best_wrk:.3f}')")
verdict=$(python3 -c "print('PASS' if $best_blt >= 0.9 * $best_wrk else 'FAIL')")
echo "best:    wrk $best_wrk req/s, brainy-loadtest $best_blt req/s, ratio ${ratio}x ($verdict, want >= 0.9x)"
echo

# pct FILE P: the P-th percentile of the seconds in FILE, in microseconds.
pct() { sort -n "$1" | awk -v p="$2" '{a[NR]=$1} END {i=int(NR*p/100+0.999999); if(i<1)i=1; printf "%d", a[i]*1e6}'; }

fixed_rate() { # name path
	local name=$1 path=$2 log=$TMP/logs/$1.log
	: >"$log"
	"$BLT" -quiet -rate "$RATE" -c "$CONNS" -d "$DUR" -o "$TMP/open-$name.json" "http://127.0.0.1:$PORT$path" >/dev/null
	kill -USR1 "$NGINX_PID" 2>/dev/null || true # reopen logs: flush
	sleep 0.5
	local n c50 c99 s50 s99 v50 v99 late dropped
	n=$(wc -l <"$log")
	c50=$(json "$TMP/open-$name.json" 'd["summary"]["p50_us"]')
	c99=$(json "$TMP/open-$name.json" 'd["summary"]["p99_us"]')
	v50=$(json "$TMP/open-$name.json" 'd["service_summary"]["p50_us"]')
	v99=$(json "$TMP/open-$name.json" 'd["service_summary"]["p99_us"]')
	late=$(json "$TMP/open-$name.json" 'd["late"] if "late" in d else 0')
	dropped=$(json "$TMP/open-$name.json" 'd["dropped"] if "dropped" in d else 0')
	s50=$(pct "$log" 50)
	s99=$(pct "$log" 99)
	echo "$name ($path, $n requests logged by nginx):"
	echo "  nginx \$request_time (1 ms resolution): p50 ${s50}us p99 ${s99}us"
	echo "  brainy-loadtest latency (from intended send): p50 ${c50}us p99 ${c99}us; service time (from actual send): p50 ${v50}us p99 ${v99}us; late $late, dropped $dropped"
}

echo "== 2. fixed rate: $RATE req/s, $CONNS connections, $DUR, against nginx's own timings"
fixed_rate static /timed.html
if [ -n "$ECHO_LOC" ]; then
	fixed_rate sleep5ms /sleep5ms
else
	echo "(libnginx-mod-http-echo not available: 5 ms location skipped)"
fi
echo
echo "command: DUR=$DUR CONNS=$CONNS ROUNDS=$ROUNDS RATE=$RATE scripts/loadtest-vs-wrk.sh"
[ "$verdict" = PASS ]
