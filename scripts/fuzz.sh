#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/; clang, AddressSanitizer + UndefinedBehaviorSanitizer) in
# build-sanitize/ (see sanitize-build.sh) and runs each one for the given time, seeded from fuzz/corpus/<target>/:
#   scripts/fuzz.sh [SECONDS_PER_TARGET (default 60)] [TARGET...]
# Writes build-sanitize/fuzz-summary.md (executions, time, coverage, corpus, crashes per target);
# crashing inputs go to build-sanitize/artifacts/<target>/. Exits 1 if any target crashed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$TLORA_REPO/scripts/setup.sh"

seconds="${1:-60}"
shift || true
source "$TLORA_REPO/scripts/sanitize-build.sh"
build="$TLORA_SANITIZE_BUILD"
read -r -a targets <<<"$(tr ';' ' ' <"$build/fuzz/fuzzers.txt")"
(($#)) && targets=("$@")
ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" cmake --build "$build" -j "${TLORA_JOBS:-2}" \
  --target "${targets[@]/%/_fuzzer}"

summary="$build/fuzz-summary.md"
{
  echo "| target | seconds | executions | exec/s | coverage (edges) | features | corpus | crashes |"
  echo "|---|---|---|---|---|---|---|---|"
} >"$summary"
status=0
for t in "${targets[@]}"; do
  seeds="$TLORA_REPO/fuzz/corpus/$t"
  work="$build/corpus/$t"  # grows across runs; the seeds in the repository stay as they are
  artifacts="$build/artifacts/$t"  # this run's crashing inputs only
  rm -rf "$artifacts"
  mkdir -p "$work" "$artifacts"
  dict=()
  [[ -f "$TLORA_REPO/fuzz/$t.dict" ]] && dict=(-dict="$TLORA_REPO/fuzz/$t.dict")
  [[ -f "$TLORA_REPO/fuzz/json.dict" && ("$t" == *config* || "$t" == resume_state) ]] && dict=(-dict="$TLORA_REPO/fuzz/json.dict")
  log="$build/$t.log"
  echo "tlora fuzz: $t for ${seconds}s" >&2
  start=$(date +%s)
  rc=0
  "$build/fuzz/${t}_fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts/" "${dict[@]}" \
    "$work" "$seeds" >"$log" 2>&1 || rc=$?
  elapsed=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  crashes=$(find "$artifacts" -type f | wc -l)
  echo "| $t | $elapsed | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $crashes |" >>"$summary"
  if ((rc != 0 || crashes > 0)); then
    status=1
    echo "tlora fuzz: $t failed (exit $rc); log: $log; inputs: $artifacts" >&2
    grep -m 5 -E 'ERROR|SUMMARY|violated|does not name|terminate' "$log" >&2 || true
  fi
done
cat "$summary"
exit "$status"
