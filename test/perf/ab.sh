#!/bin/bash
# ab.sh REPS ADDON_A ADDON_B -- SCRIPT ARGS...: runs SCRIPT (cpu-per-gb.sh or counters.sh) REPS times
# with each of two builds of the engine in turns (A B A B ...), copying each addon over
# native/build/Release/weft_engine.node before its run (a lab's daemons load it at start), and
# puts the worktree's own build back at the end. Prints each run's lines prefixed by its addon.
set -euo pipefail
cd "$(dirname "$0")/../.."
reps=$1; a=$2; b=$3; shift 3; [ "$1" = "--" ] && shift
addon=native/build/Release/weft_engine.node
cp "$addon" /tmp/ab-$$.node
trap 'cp /tmp/ab-$$.node "$addon"; rm -f /tmp/ab-$$.node' EXIT
for ((i = 1; i <= reps; i++)); do
  for x in "$a" "$b"; do
    cp "$x" "$addon"
    "$@" 2>&1 | sed "s|^|$(basename "$x" .node): |"
  done
done
