#!/bin/bash
# counters.sh BACKEND STREAMS [backend-option...]: as cpu-per-gb.sh (2-host lab, iperf3 -P STREAMS
# for 8 s from h1c1 to h2c1), then the engine counters' increase on each host over the run, as
# per-call ratios: how many packets a TUN read, a sendmmsg, a recvmmsg and a TUN write moved.
# h1 is the data's sender (its inside seals/encapsulates the data, its outside gets the ACKs),
# h2 the receiver. The counters are cheap and load-independent, unlike Gb/s here.
# PERF="record|stat" also runs `perf record -g` / `perf stat` on both daemons during the transfer
# (output /tmp/counters-$$.perf.data, or printed). IPERF="-b 1G" adds iperf3 client options (a
# rate cap shows what the kernel's share per GB does at a given throughput).
set -euo pipefail
cd "$(dirname "$0")/../.."
b=$1; p=$2; shift 2; opts="$*"
. test/perf/two-host-lab.sh
two_host_lab ct "$b" "$@"
scrape() { ip netns exec "$name-$1" curl -s "localhost:9471/metrics" | grep '^weft_dataplane_' | grep -v ' 0$' || true; }
scrape h1 >/tmp/$name.h1.0; scrape h2 >/tmp/$name.h2.0
ip netns exec $name-h2c1 iperf3 -s -1 -D; sleep 0.5
perf_pid=
case "${PERF:-}" in
  record) perf record -q -g -o /tmp/counters-$$.perf.data -p "$(echo $pids | tr ' ' ,)" -- sleep 7 >/dev/null 2>&1 & perf_pid=$! ;;
  stat) perf stat -e task-clock,cycles,instructions,context-switches -p "$(echo $pids | tr ' ' ,)" -- sleep 7 2>/tmp/$name.stat & perf_pid=$! ;;
esac
c0=$(cpu); t0=$(date +%s%N)
gbps=$(ip netns exec $name-h1c1 iperf3 -c $ip2 -t 8 -P $p ${IPERF:-} -J | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s).end;console.log((j.sum_received.bits_per_second/1e9).toFixed(2), j.sum_sent.retransmits ?? 0)})')
c1=$(cpu); t1=$(date +%s%N)
[ -n "$perf_pid" ] && wait $perf_pid || true
scrape h1 >/tmp/$name.h1.1; scrape h2 >/tmp/$name.h2.1
set -- $gbps
awk -v g=$1 -v r=$2 -v c=$((c1-c0)) -v t=$(( (t1-t0)/1000000 )) -v label="$b P$p $opts" 'BEGIN { secs=t/1000; core=c/100/secs; gb=g/8*secs; printf "%-36s %6.2f Gb/s  retrans %s  daemons %5.0f%% of a core  %.2f core-s/GB\n", label, g, r, core*100, (c/100)/gb }'
for h in h1 h2; do
  node -e '
    const fs = require("fs");
    const read = f => Object.fromEntries(fs.readFileSync(f, "utf8").split("\n").filter(Boolean).map(l => { const i = l.lastIndexOf(" "); return [l.slice(0, i), Number(l.slice(i + 1))]; }));
    const a = read(process.argv[1]), b = read(process.argv[2]);
    const d = k => (b[k] ?? 0) - (a[k] ?? 0);
    const io = (s, dir) => `weft_dataplane_${s}_total{direction="${dir}"}`;
    const r = (x, y) => (y ? (x / y).toFixed(1) : "-");
    const ip = d(io("packets", "inside")), op = d(io("packets", "outside"));
    const reads = d("weft_dataplane_tun_reads_total"), writes = d("weft_dataplane_tun_writes_total");
    console.log(`${process.argv[3]} inside : ${reads} TUN reads (${d("weft_dataplane_super_packets_total")} super), ${ip} packets = ${r(ip, reads)}/read; ` +
      `${d(io("batches", "inside"))} sendmmsg, ${r(d(io("batch_datagrams", "inside")), d(io("batches", "inside")))} datagrams/call`);
    console.log(`${process.argv[3]} outside: ${d(io("batches", "outside"))} recvmmsg, ${r(d(io("batch_datagrams", "outside")), d(io("batches", "outside")))} datagrams/call; ` +
      `${op} packets, ${writes} TUN writes = ${r(op, writes)}/write (${d("weft_dataplane_coalesced_packets_total")} coalesced)`);
    for (const k of Object.keys(b)) if (k.includes("drops") && d(k) > 0) console.log(`${process.argv[3]}   ${k} +${d(k)}`);
  ' /tmp/$name.$h.0 /tmp/$name.$h.1 $h
done
[ "${PERF:-}" = stat ] && cat /tmp/$name.stat || true
rm -f /tmp/$name.h?.?
