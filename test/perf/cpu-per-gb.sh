#!/bin/bash
# cpu-per-gb.sh BACKEND STREAMS [backend-option...]: 2-host lab, iperf3 -P STREAMS for 8 s container to container;
# prints Gb/s, daemons' CPU (% of a core, threads included) and daemon core-seconds per GB moved.
set -euo pipefail
cd "$(dirname "$0")/../.."
b=$1; p=$2; shift 2
. test/perf/two-host-lab.sh
two_host_lab cg "$b" "$@"
ip netns exec $name-h2c1 iperf3 -s -1 -D; sleep 0.5
c0=$(cpu); t0=$(date +%s%N)
gbps=$(ip netns exec $name-h1c1 iperf3 -c $ip2 -t 8 -P $p -J | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log((JSON.parse(s).end.sum_received.bits_per_second/1e9).toFixed(2)))')
c1=$(cpu); t1=$(date +%s%N)
awk -v g=$gbps -v c=$((c1-c0)) -v t=$(( (t1-t0)/1000000 )) -v label="$b P$p $*" 'BEGIN { secs=t/1000; core=c/100/secs; gb=g/8*secs; printf "%-36s %6.2f Gb/s  daemons %5.0f%% of a core  %.2f core-s/GB\n", label, g, core*100, (c/100)/gb }'
