#!/usr/bin/env bash
# Profile-guided build of the bench gateway (rustc's PGO, as rustc, Firefox and Chrome are
# built): an instrumented build serves the load.sh traffic (plus refusals: no credential,
# unknown API) for TRAIN seconds, its profile is merged, and the release build is made again
# with it. LLVM then lays the hot path out contiguously and moves cold blocks away, which is
# what the gateway's instruction cache misses call for (docs/benchmarks-history.md, run 10). Prints
# the path of the optimised binary on the last line.
#
#   bash apim-gateway/bench/pgo.sh                       # from the workspace root
#   GATEWAY_BIN=$(bash apim-gateway/bench/pgo.sh | tail -1) bash apim-gateway/bench/load.sh
#
# Needs llvm-profdata of rustc's LLVM: `rustup component add llvm-tools` (done here if
# missing). The same steps build examples/gateway.rs for production: the profile comes from
# traffic like the one it will serve.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PGO_DIR=${PGO_DIR:-/tmp/apim-pgo}
TRAIN=${TRAIN:-20}
BACKEND_PORT=${BACKEND_PORT:-18080}
GATEWAY_PORT=${GATEWAY_PORT:-18280}
WORK=$(mktemp -d /tmp/apim-pgo-run.XXXXXX)
PIDS=()
# shellcheck source=backend.sh
. "$(dirname "$0")/backend.sh"
trap 'clean_up "$WORK"' EXIT

profdata() { find "$(rustc --print sysroot)" -name llvm-profdata -type f 2>/dev/null | head -n1; }
if [ -z "$(profdata)" ]; then rustup component add llvm-tools >&2; fi
PROFDATA=$(profdata)
need() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
if ! need wrk || ! need nginx; then
  apt-get update -qq >&2
  apt-get install -y -qq wrk nginx-light >/dev/null 2>&1
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

rm -rf "$PGO_DIR/profiles"
mkdir -p "$PGO_DIR/profiles"
echo "instrumented build..." >&2
(cd "$ROOT" && RUSTFLAGS="-Cprofile-generate=$PGO_DIR/profiles" cargo build --release -q \
  -p apim-gateway --example bench_gateway --target-dir "$PGO_DIR/target-generate") >&2

start_backend "$NGINX" "$WORK" "$BACKEND_PORT" 2
"$PGO_DIR/target-generate/release/examples/bench_gateway" "$GATEWAY_PORT" \
  "http://127.0.0.1:$BACKEND_PORT" "$WORK/token" >"$WORK/gateway.log" 2>&1 &
GW=$!
PIDS+=("$GW")
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$GATEWAY_PORT/" 2>/dev/null && break
  sleep 0.1
done
URL="http://127.0.0.1:$GATEWAY_PORT/bench/1.0.0/hello"
echo "training for ${TRAIN}s..." >&2
wrk -t1 -c8 -d2s "$URL" >/dev/null                                # 401: no credential
wrk -t1 -c8 -d2s -H "Authorization: Bearer $(cat "$WORK/token")" \
  "http://127.0.0.1:$GATEWAY_PORT/nothing/1.0.0/here" >/dev/null  # 404: unknown API
wrk -t2 -c64 -d"${TRAIN}s" -H "Authorization: Bearer $(cat "$WORK/token")" "$URL" >/dev/null
kill -TERM "$GW"
wait "$GW" || true # the profile is written as the process exits
"$PROFDATA" merge -o "$PGO_DIR/merged.profdata" "$PGO_DIR/profiles"
# named by its content: cargo does not look into the profile, only at RUSTFLAGS, so a new
# profile under the old name would leave the crates built with the old one
MERGED="$PGO_DIR/merged-$(sha256sum "$PGO_DIR/merged.profdata" | cut -c1-16).profdata"
mv "$PGO_DIR/merged.profdata" "$MERGED"

echo "optimised build..." >&2
(cd "$ROOT" && RUSTFLAGS="-Cprofile-use=$MERGED" cargo build --release -q \
  -p apim-gateway --example bench_gateway --target-dir "$PGO_DIR/target-use") >&2
echo "$PGO_DIR/target-use/release/examples/bench_gateway"
