#!/usr/bin/env bash
# Gateway load test (issue 6): the same backend measured (a) directly, (b) behind nginx as a
# plain reverse proxy, (c) behind the apim gateway with JWT validation + subscription check +
# throttling. Loopback only; each run is bounded (DURATION, default 10 s).
#
#   bash apim-gateway/bench/load.sh            # from the workspace root
#   DURATION=5s CONNECTIONS=64 THREADS=2 bash apim-gateway/bench/load.sh
#   BENCH_RUNTIME=multi bash apim-gateway/bench/load.sh   # one multi-threaded runtime
#   BENCH_THREADS=1 bash apim-gateway/bench/load.sh       # per-core runtimes: how many
#
# The bench gateway runs one current-thread tokio runtime per core by default (SO_REUSEPORT
# listeners, see examples/bench_gateway.rs); BENCH_RUNTIME / BENCH_THREADS are passed through.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
BACKEND_PORT=${BACKEND_PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18081}
GATEWAY_PORT=${GATEWAY_PORT:-18280}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/apim-load.XXXXXX)
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -f "$WORK/nginx.pid" ]; then kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
if ! need wrk || ! need nginx; then
  echo "installing wrk and nginx from the Debian packages..."
  apt-get update -qq
  apt-get install -y -qq wrk nginx-light >/dev/null 2>&1 || apt-get install -y -qq wrk nginx >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

echo "building the bench gateway (release)..."
(cd "$ROOT" && cargo build --release -q -p apim-gateway --example bench_gateway)
GATEWAY_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bench_gateway"

# one nginx: the backend (a fixed 200 answer) and, separately, a plain reverse proxy to it
mkdir -p "$WORK/logs"
cat >"$WORK/nginx.conf" <<CONF
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$BACKEND_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$BACKEND_PORT;
    location / { default_type application/json; return 200 '{"ok":true}'; }
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }
}
CONF
"$NGINX" -p "$WORK" -c "$WORK/nginx.conf"

"$GATEWAY_BIN" "$GATEWAY_PORT" "http://127.0.0.1:$BACKEND_PORT" "$WORK/token" >"$WORK/gateway.log" 2>&1 &
PIDS+=($!)
GW_PID=$!
for _ in $(seq 1 100); do
  if curl -s -o /dev/null "http://127.0.0.1:$GATEWAY_PORT/" 2>/dev/null; then break; fi
  sleep 0.1
done
TOKEN=$(cat "$WORK/token")
check=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$GATEWAY_PORT/bench/1.0.0/hello")
nocred=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GATEWAY_PORT/bench/1.0.0/hello")
echo "gateway check: with token $check, without $nocred"
[ "$check" = 200 ] && [ "$nocred" = 401 ] || { cat "$WORK/gateway.log"; exit 1; }

run() { # name url [header]
  local out
  if [ $# -ge 3 ]; then
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "$3" "$2")
  else
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$2")
  fi
  local rps p99 errs
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  printf '%-28s %12s req/s   p99 %-9s non-2xx %s\n' "$1" "$rps" "$p99" "${errs:-0}"
  echo "$1 $rps $p99" >>"$WORK/results"
}

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION on $(nproc) cores ($(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
run "(a) backend direct" "http://127.0.0.1:$BACKEND_PORT/bench/1.0.0/hello"
run "(b) nginx reverse proxy" "http://127.0.0.1:$NGINX_PORT/bench/1.0.0/hello"
run "(c) apim gateway" "http://127.0.0.1:$GATEWAY_PORT/bench/1.0.0/hello" "Authorization: Bearer $TOKEN"
RSS=$(ps -o rss= -p "$GW_PID" | xargs)
echo "gateway RSS after the run: $((RSS / 1024)) MiB"
awk 'NR==2 {b=$(NF-1)} NR==3 {c=$(NF-1)} END {if (b>0) printf "throughput (c)/(b): %.2fx\n", c/b}' "$WORK/results"
