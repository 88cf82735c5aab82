#!/usr/bin/env bash
# Gateway load test (issue 6): the same backend measured (a) directly, (b) behind nginx as a
# plain reverse proxy, (c) behind the apim gateway with JWT validation + subscription check +
# throttling. Loopback only; each run is bounded (DURATION, default 10 s).
#
#   bash apim-gateway/bench/load.sh            # from the workspace root
#   DURATION=5s CONNECTIONS=64 THREADS=2 bash apim-gateway/bench/load.sh
#   REPEAT=5 bash apim-gateway/bench/load.sh              # rounds (a, b, c each), medians
#   BENCH_RUNTIME=multi bash apim-gateway/bench/load.sh   # one multi-threaded runtime
#   BENCH_THREADS=1 bash apim-gateway/bench/load.sh       # worker threads: how many
#   BENCH_SCHED=normal bash apim-gateway/bench/load.sh    # workers without SCHED_BATCH
#   BENCH_HTTP1=hyper bash apim-gateway/bench/load.sh     # hyper reads HTTP/1.1, not the native server
#   GATEWAY_BIN=/path/to/bench_gateway bash ...           # a given build (A/B), no cargo
#   PGO=1 bash apim-gateway/bench/load.sh                 # a profile-guided build (bench/pgo.sh)
#   BENCH_ADMIN=127.0.0.1:18290 bash ...                  # the gateway's /metrics there
#
# Each row also gives the backend's CPU per request: the same backend costs 3x more per request
# when its wake-ups do not batch, which is what moves the proxies' throughput most on a small
# machine (docs/benchmarks-history.md, run 9).
#
# The bench gateway serves through Gateway::bind with gateway.worker_threads = one per core by
# default (single-threaded runtimes, SO_REUSEPORT listeners, SCHED_BATCH as
# gateway.worker_scheduling sets by default; see examples/bench_gateway.rs and
# docs/gateway.md); BENCH_RUNTIME / BENCH_THREADS / BENCH_SCHED / BENCH_HTTP1 are passed
# through.
set -euo pipefail

DURATION=${DURATION:-10s}
REPEAT=${REPEAT:-3}
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
  for f in "$WORK"/*/nginx.pid; do [ -f "$f" ] && { kill "$(cat "$f")" 2>/dev/null || true; }; done
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

if [ -z "${GATEWAY_BIN:-}" ] && [ "${PGO:-0}" = 1 ]; then
  echo "building the bench gateway (release, profile-guided: bench/pgo.sh)..."
  GATEWAY_BIN=$(bash "$(dirname "$0")/pgo.sh" | tail -n1)
fi
if [ -z "${GATEWAY_BIN:-}" ]; then
  echo "building the bench gateway (release)..."
  (cd "$ROOT" && cargo build --release -q -p apim-gateway --example bench_gateway)
  GATEWAY_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bench_gateway"
fi

# two nginx instances: the backend (a fixed 200 answer) and, as a separate process like the
# gateway, a plain reverse proxy to it (sharing one nginx would let the proxy hand requests to
# the backend inside one worker process, which no deployed proxy does)
mkdir -p "$WORK/proxy/logs"
cat >"$WORK/proxy/nginx.conf" <<CONF
worker_processes 2;
pid $WORK/proxy/nginx.pid;
error_log $WORK/proxy/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$BACKEND_PORT; keepalive 128; }
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
# shellcheck source=backend.sh
. "$(dirname "$0")/backend.sh"
start_backend "$NGINX" "$WORK/backend" "$BACKEND_PORT" 2
"$NGINX" -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf"

# in a session of its own, as the nginx instances are (they daemonize, which calls setsid):
# with the kernel's autogroup scheduling (CONFIG_SCHED_AUTOGROUP, on by default) each session
# is a scheduling group with an equal share of the CPUs, and a gateway left in this script's
# session would share one group with wrk, where nginx has a group of its own. That difference
# alone stalled the backend's workers for 10-60 ms at a time (docs/benchmarks-history.md, run 10).
setsid "$GATEWAY_BIN" "$GATEWAY_PORT" "http://127.0.0.1:$BACKEND_PORT" "$WORK/token" >"$WORK/gateway.log" 2>&1 &
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

# CPU time (user and system, in clock ticks) of the given processes and their threads
ticks() {
  local u=0 s=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] || continue
    read -r pu ps < <(awk '{print $14, $15}' "/proc/$p/stat")
    u=$((u + pu))
    s=$((s + ps))
  done
  echo "$u $s"
}
HZ=$(getconf CLK_TCK)

run() { # name url pids [header]: the pids are the server under test, for CPU per request
  local out before after backend_before backend_after
  before=$(ticks $3)
  backend_before=$(ticks $BACKEND_PIDS)
  if [ $# -ge 4 ]; then
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "$4" "$2")
  else
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$2")
  fi
  after=$(ticks $3)
  backend_after=$(ticks $BACKEND_PIDS)
  local rps p99 errs reqs cpu usr sys backend
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  per_req() { awk -v d="$1" -v hz="$HZ" -v n="$reqs" 'BEGIN {if (n > 0) printf "%.1f", d / hz * 1e6 / n; else printf "0"}'; }
  read -r bu bs <<<"$before"
  read -r au as <<<"$after"
  usr=$(per_req $((au - bu)))
  sys=$(per_req $((as - bs)))
  cpu=$(per_req $((au - bu + as - bs)))
  # the backend's CPU per request: how well its wake-ups batch (see docs/benchmarks-history.md, run 9)
  read -r bbu bbs <<<"$backend_before"
  read -r bau bas <<<"$backend_after"
  backend=$(per_req $((bau - bbu + bas - bbs)))
  printf '%-28s %12s req/s   p99 %-9s CPU/request %6s us (user %s, kernel %s)   backend %s us   non-2xx %s\n' "$1" "$rps" "$p99" "$cpu" "$usr" "$sys" "$backend" "${errs:-0}"
  echo "$1|$rps|$p99|$cpu|$usr|$sys|$backend" >>"$WORK/results"
}

BACKEND_PIDS=$(pgrep -P "$(cat "$WORK/backend/nginx.pid")" | xargs)
PROXY_PIDS=$(pgrep -P "$(cat "$WORK/proxy/nginx.pid")" | xargs)
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION on $(nproc) cores ($(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
# rounds of (a), (b), (c) in turn, so that slow drifts of a shared machine hit all three alike
for round in $(seq 1 "$REPEAT"); do
  echo "round $round of $REPEAT"
  run "(a) backend direct" "http://127.0.0.1:$BACKEND_PORT/bench/1.0.0/hello" "$BACKEND_PIDS"
  run "(b) nginx reverse proxy" "http://127.0.0.1:$NGINX_PORT/bench/1.0.0/hello" "$PROXY_PIDS"
  run "(c) apim gateway" "http://127.0.0.1:$GATEWAY_PORT/bench/1.0.0/hello" "$GW_PID" "Authorization: Bearer $TOKEN"
done
RSS=$(ps -o rss= -p "$GW_PID" | xargs)
echo "gateway RSS after the runs: $((RSS / 1024)) MiB"
echo "medians over $REPEAT rounds (p99 in ms):"
python3 - "$WORK/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, rps, p99, cpu, usr, sys_, backend = line.strip().split("|")
    ms = float(p99[:-2]) if p99.endswith("ms") else float(p99[:-1]) * 1000 if p99.endswith("s") and not p99.endswith("us") else float(p99[:-2]) / 1000
    rows.setdefault(name, []).append((float(rps), ms, float(cpu), float(usr), float(sys_), float(backend)))
med = {}
for name, v in rows.items():
    med[name] = [statistics.median(x) for x in zip(*v)]
    print(f"{name:28s} {med[name][0]:12.0f} req/s   p99 {med[name][1]:7.2f} ms   CPU/request {med[name][2]:6.1f} us (user {med[name][3]:.1f}, kernel {med[name][4]:.1f})   backend {med[name][5]:.1f} us")
b, c = med.get("(b) nginx reverse proxy"), med.get("(c) apim gateway")
if b and c:
    print(f"throughput (c)/(b): {c[0] / b[0]:.2f}x   p99 (c)-(b): {c[1] - b[1]:+.2f} ms   CPU per request (c)/(b): {c[2] / b[2]:.2f}x")
PY
