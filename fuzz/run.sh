#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 60) on the stable toolchain, without
# cargo-fuzz: libFuzzer (libfuzzer-sys) with SanitizerCoverage flags, which stable rustc
# accepts; no AddressSanitizer (that needs nightly), so the run finds panics, overflows
# (overflow checks on) and debug assertions, not memory errors. Corpora grow under
# fuzz/corpus/<target> (not committed), crashes land in fuzz/artifacts/<target>/.
#
#   bash fuzz/run.sh                       # from the workspace root
#   FUZZ_SECONDS=600 bash fuzz/run.sh jwt_verify
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGET_TRIPLE=$(rustc -vV | awk '/^host:/ {print $2}')
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
# --target keeps the flags off build scripts and proc macros
cargo build --release --bins --target "$TARGET_TRIPLE"
DIR="${CARGO_TARGET_DIR:-target}/$TARGET_TRIPLE/release"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(openapi_import throttle_policy jwt_verify uri_template backend_response http1_request wildcard)
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t for ${SECONDS_EACH}s"
  if ! "$DIR/$t" "corpus/$t" -artifact_prefix="artifacts/$t/" -max_total_time="$SECONDS_EACH" \
    -print_final_stats=1 2>"artifacts/$t.log"; then
    echo "$t FAILED: see fuzz/artifacts/$t.log and fuzz/artifacts/$t/"
    status=1
  fi
  grep -E "stat::number_of_executed_units|stat::new_units_added|cov: " "artifacts/$t.log" | tail -3
done
exit $status
