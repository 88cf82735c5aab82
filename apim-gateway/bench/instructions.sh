#!/usr/bin/env bash
# User-space instructions per proxied request (valgrind callgrind): a figure that does not
# depend on what else the machine is doing, unlike requests/s and CPU time. The bench gateway
# (JWT + subscription + throttling, as in load.sh) runs under callgrind in front of an nginx
# backend; instrumentation is switched on after a warm-up, wrk sends DURATION of traffic on
# 8 connections, and the total instruction count is divided by the requests served.
#
#   bash apim-gateway/bench/instructions.sh            # from the workspace root
#   GATEWAY_BIN=/path/to/bench_gateway bash ...        # measure a given build (A/B)
#   CALLGRIND_OUT=/tmp/cg.out bash ...                  # keep the profile (callgrind_annotate)
#
# Note: valgrind emulates no SHA extensions, so ring's SHA-256 (the token cache key) runs its
# AVX code path here and counts ~17,000 instructions per request that SHA-NI hardware does in
# a few hundred cycles; the script reports the figure with and without it.
set -euo pipefail

DURATION=${DURATION:-4s}
BACKEND_PORT=${BACKEND_PORT:-18090}
GATEWAY_PORT=${GATEWAY_PORT:-18291}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/apim-instr.XXXXXX)
PIDS=()
# shellcheck source=backend.sh
. "$(dirname "$0")/backend.sh"
trap 'clean_up "$WORK"' EXIT

need() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
if ! need wrk || ! need nginx || ! need valgrind; then
  apt-get update -qq
  apt-get install -y -qq wrk nginx-light valgrind >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [ -z "${GATEWAY_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release -q -p apim-gateway --example bench_gateway)
fi
BIN="${GATEWAY_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bench_gateway}"

start_backend "$NGINX" "$WORK" "$BACKEND_PORT" 1

BENCH_THREADS=1 valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$WORK/cg.out" \
  "$BIN" "$GATEWAY_PORT" "http://127.0.0.1:$BACKEND_PORT" "$WORK/token" >"$WORK/gw.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 200); do
  curl -s -o /dev/null "http://127.0.0.1:$GATEWAY_PORT/" 2>/dev/null && break
  sleep 0.3
done
AUTH="Authorization: Bearer $(cat "$WORK/token")"
URL="http://127.0.0.1:$GATEWAY_PORT/bench/1.0.0/hello"
wrk -t1 -c8 -d2s -H "$AUTH" "$URL" >/dev/null # warm-up: connections, caches
callgrind_control -i on >/dev/null
out=$(wrk -t1 -c8 -d"$DURATION" -H "$AUTH" "$URL")
callgrind_control -i off >/dev/null
callgrind_control -d >/dev/null
sleep 0.5
n=$(awk '/requests in/ {print $1}' <<<"$out")
dump=$(ls "$WORK"/cg.out* | tail -1)
ann=$(callgrind_annotate --auto=no "$dump" 2>/dev/null)
total=$(awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}' <<<"$ann")
sha=$(awk '/sha256_block_data_order/ {gsub(",", "", $1); s += $1} END {print s + 0}' <<<"$ann")
[ -n "${CALLGRIND_OUT:-}" ] && cp "$dump" "$CALLGRIND_OUT"
echo "requests measured: $n"
echo "user-space instructions per request: $((total / n))"
echo "  without SHA-256 of the token (see the note above): $(((total - sha) / n))"
