#!/bin/sh
# Builds the libFuzzer harnesses (clang, AddressSanitizer + UndefinedBehaviorSanitizer) and
# runs each for N seconds (default 60; 0 only replays the seeds and the regression corpus).
# Not part of `npm test` or CI. See ../README.md, "Fuzzing".
#
#   native/fuzz/run.sh [seconds]             fuzz_outside, fuzz_inside, then fuzz_wireguard
#   COVERAGE=1 native/fuzz/run.sh [seconds]  then a line-coverage report of ../src over
#                                            everything the corpora hold
#
# Outputs go to native/fuzz/build/: the growing corpora (corpus-*), crash inputs
# (crashes-*), logs (fuzz_*.log). Needs clang with its runtime libraries
# (Debian: apt-get install clang libclang-rt-14-dev) and libcrypto (libssl-dev: the engine's
# wireguard code is built against Node's OpenSSL headers and linked with Debian's libcrypto here).
set -eu
seconds=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
src=$here/../src
out=$here/build
cc=${CC:-clang}
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "run.sh: $cc not found; install clang and its runtime (apt-get install clang libclang-rt-14-dev) or set CC" >&2
  exit 2
fi
mkdir -p "$out"
cflags="-g -O1 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -I${NODE_INCLUDE:-/usr/include/node}"
engine="$src/inside.c $src/outside.c $src/icmp.c $src/routes.c $src/wireguard.c $src/checksum.c"
harnesses="outside inside wireguard"

for h in $harnesses; do
  # shellcheck disable=SC2086 # word splitting of the flag and file lists is wanted
  $cc $cflags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -o "$out/fuzz_$h" "$here/fuzz_$h.c" $engine -lcrypto
done
# shellcheck disable=SC2086
$cc $cflags -o "$out/seeds" "$here/seeds.c"
rm -rf "$out/seeds-outside" "$out/seeds-inside" "$out/seeds-wireguard"
mkdir -p "$out/seeds-outside" "$out/seeds-inside" "$out/seeds-wireguard"
"$out/seeds" "$out/seeds-outside" "$out/seeds-inside" "$out/seeds-wireguard"

if [ "$seconds" -eq 0 ]; then limit="-runs=0"; else limit="-max_total_time=$seconds"; fi
failed=""
for h in $harnesses; do
  mkdir -p "$out/corpus-$h" "$out/crashes-$h" "$here/corpus/$h"
  echo "== fuzz_$h: $seconds s (log: $out/fuzz_$h.log)"
  # The regression corpus (corpus/<harness>, committed) and the seeds are read; new inputs
  # go to build/corpus-<harness> only.
  if "$out/fuzz_$h" $limit -max_len=140000 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$out/crashes-$h/" "$out/corpus-$h" "$out/seeds-$h" "$here/corpus/$h" \
      >"$out/fuzz_$h.log" 2>&1; then
    grep -E '^#[0-9]+.*(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' \
      "$out/fuzz_$h.log" || true
  else
    failed="$failed fuzz_$h"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz oracle|artifact_prefix|Test unit written)|runtime error' \
      "$out/fuzz_$h.log" | head -20
    echo "fuzz_$h FAILED: reproduce with $out/fuzz_$h <crash file>; keep the input in native/fuzz/corpus/$h/ once fixed"
  fi
done

if [ "${COVERAGE:-0}" = 1 ]; then
  profdata=$(command -v llvm-profdata || command -v llvm-profdata-14)
  cov=$(command -v llvm-cov || command -v llvm-cov-14)
  for h in $harnesses; do
    # shellcheck disable=SC2086
    $cc $cflags -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping \
      -o "$out/cover_$h" "$here/fuzz_$h.c" $engine -lcrypto
    LLVM_PROFILE_FILE="$out/cover_$h.profraw" "$out/cover_$h" -runs=0 -max_len=140000 \
      "$out/corpus-$h" "$out/seeds-$h" "$here/corpus/$h" >/dev/null 2>&1
    "$profdata" merge -o "$out/cover_$h.profdata" "$out/cover_$h.profraw"
  done
  echo "== line coverage of the packet code (both harnesses together)"
  "$profdata" merge -o "$out/cover.profdata" "$out/cover_outside.profdata" "$out/cover_inside.profdata"
  "$cov" report "$out/cover_outside" -object "$out/cover_inside" -instr-profile="$out/cover.profdata" \
    "$src/inside.c" "$src/outside.c" "$src/icmp.c" "$src/routes.c" "$src/checksum.h" "$src/packet.h"
  echo "(uncovered lines: $cov show $out/cover_outside -object $out/cover_inside -instr-profile=$out/cover.profdata $src/outside.c)"
fi

if [ -n "$failed" ]; then
  echo "FAILED:$failed"
  exit 1
fi
