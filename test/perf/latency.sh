#!/bin/bash
# latency.sh BACKEND [backend-option...]: 2-host lab; idle ping (5 ms apart), hot ping (-i 0), sockperf
# ping-pong; engine-thread wake-ups (voluntary context switches) per idle echo, and the daemons' CPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
b=$1; shift
. test/perf/two-host-lab.sh
two_host_lab lt "$b" "$@"
switches() { local t=0; for p in $pids; do for d in /proc/$p/task/*; do case "$(cat $d/comm)" in weft-q*) t=$((t + $(awk '/^voluntary_ctxt_switches/{print $2}' $d/status)));; esac; done; done; echo $t; }
weft lab exec h1c1 --name $name -- ping -c 50 -i 0.01 -q $ip2 >/dev/null
s0=$(switches); c0=$(cpu)
idle=$(weft lab exec h1c1 --name $name -- ping -c 400 -i 0.005 -q $ip2 | awk -F/ '/rtt/{print $5}')
s1=$(switches); c1=$(cpu)
hot=$(weft lab exec h1c1 --name $name -- ping -c 3000 -i 0 -q $ip2 | awk -F/ '/rtt/{print $5}')
ip netns exec $name-h2c1 sockperf server -i $ip2 >/dev/null 2>&1 & sp=$!
sleep 0.5
rr=$(ip netns exec $name-h1c1 sockperf ping-pong -i $ip2 -t 4 2>&1 | awk '/avg-latency/{for(i=1;i<=NF;i++) if ($i ~ /avg-latency=/) {split($i,a,"="); print a[2]}}')
kill $sp 2>/dev/null || true; wait $sp 2>/dev/null || true
sleep 5; c2=$(cpu); sleep 10; c3=$(cpu)
printf '%-34s idle %6s us  hot %6s us  sockperf %8s us  wakeups/echo %5s  cpu during idle ping %4s%%  idle cpu %5s%%\n' "$b $*" \
  "$(awk -v x=$idle 'BEGIN{printf "%.0f", x*1000}')" "$(awk -v x=$hot 'BEGIN{printf "%.0f", x*1000}')" "$rr" \
  "$(awk -v a=$s0 -v b=$s1 'BEGIN{printf "%.2f", (b-a)/400}')" "$(awk -v a=$c0 -v b=$c1 'BEGIN{printf "%.0f", (b-a)/2}')" "$(awk -v a=$c2 -v b=$c3 'BEGIN{printf "%.2f", (b-a)/10}')"
