#!/usr/bin/env bash
# Fuzzes every decoder that takes outside bytes (the targets in fuzz/, listed in fuzz/README.md)
# for SECONDS each, one target after another, and fails if any input crashes one.
#
#   scripts/fuzz.sh          # 8 s per target: the bounded run scripts/test.sh does
#   scripts/fuzz.sh 600      # a long run (fuzz/README.md records the latest one's figures)
#   scripts/fuzz.sh 60 jwt_header scpi_reply    # only these targets
#
# Each target starts from the committed seeds (fuzz/corpus/<target>/) plus what earlier runs
# found (target/fuzz/corpus/<target>/, outside the repository, so a run never dirties it).
# A crashing input is written to target/fuzz/artifacts/<target>/; reproduce it with
# `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>` in fuzz/. Prints per target: executions,
# executions per second, coverage (cov: edges, ft: features), corpus size and the verdict.
#
# Installs cargo-fuzz (pinned, into ~/.cargo/bin) when missing. Needs no nightly toolchain:
# RUSTC_BOOTSTRAP=1 lets the stable compiler take the -Z flags cargo-fuzz passes (sanitizer and
# coverage instrumentation).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/deps.sh

seconds=${1:-8}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/fuzz.sh [seconds-per-target [target...]]" >&2
  exit 64
fi
shift $(($# > 0 ? 1 : 0))

ensure_cargo_fuzz
export RUSTC_BOOTSTRAP=1
work=$(pwd)/target/fuzz

# fuzz/ is its own workspace with its own lock file, started from the root one: say when the
# two disagree, since the services would then ship other versions than the ones fuzzed.
lock_versions() { awk -F'"' '/^name = /{name=$2} /^version = /{print name, $2}' "$1" | sort -u; }
root_versions=$(lock_versions Cargo.lock)
drift=$(lock_versions fuzz/Cargo.lock | while read -r name version; do
  if grep -q "^$name " <<<"$root_versions" && ! grep -qx "$name $version" <<<"$root_versions"; then
    echo "$name"
  fi
done)
if [ -n "$drift" ]; then
  echo "warning: fuzz/Cargo.lock has other versions than Cargo.lock of: $(echo $drift)" >&2
  echo "         refresh it: cp Cargo.lock fuzz/Cargo.lock && (cd fuzz && cargo fuzz build)" >&2
fi

echo "==> cargo fuzz build (address sanitizer, debug assertions)" >&2
build_started=$SECONDS
(cd fuzz && cargo fuzz build >&2)
echo "    built in $((SECONDS - build_started)) s" >&2

if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cd fuzz && cargo fuzz list); fi
failed=()
printf '%-22s %12s %9s %7s %7s %7s  %s\n' target execs execs/s cov ft corpus result
for target in "${targets[@]}"; do
  mkdir -p "$work/corpus/$target" "$work/artifacts/$target"
  log="$work/$target.log"
  # -timeout: an input taking 10 s is a hang, reported like a crash. -malloc_limit_mb: one
  # allocation over 128 MiB for an input of at most 64 KiB is a length field trusted too far,
  # also reported like a crash. The seeds come second: libFuzzer reads both and writes what it
  # finds only to the first directory.
  if (cd fuzz && cargo fuzz run "$target" "$work/corpus/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -malloc_limit_mb=128 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/$target/") >"$log" 2>&1; then
    result=ok
  else
    result="FAILED (log: $log)"
    failed+=("$target")
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  status=$(grep -E '^#[0-9]+.* cov: ' "$log" | tail -n 1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$status")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$status")
  corpus=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$status")
  printf '%-22s %12s %9s %7s %7s %7s  %s\n' "$target" "${execs:--}" "${rate:--}" \
    "${cov:--}" "${ft:--}" "${corpus:--}" "$result"
done

if [ "${#failed[@]}" -gt 0 ]; then
  for target in "${failed[@]}"; do
    echo "==> $target failed; the end of its log:" >&2
    tail -n 40 "$work/$target.log" >&2
    ls "$work/artifacts/$target" >&2 || true
  done
  exit 1
fi
