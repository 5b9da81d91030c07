#!/usr/bin/env bash
# Draws docs/img/dashboard.png: the dashboard's own queries against a real Prometheus scraping a
# 3-host udp lab through a scripted bad quarter of an hour (as root, after `npm ci && npm run build`).
#
#   namespace <lab>-etcd: etcd + prometheus (scrapes every host's /metrics over the underlay)
#        │ underlay bridge
#   ├─ <lab>-h1  weft run (udp)  ── h1c1
#   ├─ <lab>-h2  weft run (udp)  ── h2c1   ← iperf3 server
#   └─ <lab>-h3  weft run (udp)  ── h3c1
#
# The timeline (minutes from the first scrape), so every panel has something to show:
#   0.0  daemons up: 120 s lease TTL (renewed every minute), peer probes every 10 s
#   1.0  iperf3 h1c1 → h2c1 at 200 Mb/s for 60 s             (data path throughput)
#   2.5  300 garbage datagrams to h2's UDP 8285              (data path drops by reason)
#   3.0  etcd frozen (SIGSTOP) for 40 s                     (etcd latency and errors, renewal failures)
#   4.5  nft drops UDP 8285 on h3 for 2.5 min               (probe verdicts: encapsulation-blocked)
#   8.0  render the last 8 minutes, screenshot with headless Chromium
# Everything (lab, prometheus) is removed on exit, also on failure; processes by PID.
#
#   deploy/grafana/demo-lab.sh [out.png]     (default docs/img/dashboard.png)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
checkout="$(cd "$here/../.." && pwd)"
out="$(realpath -m "${1:-$checkout/docs/img/dashboard.png}")"
lab="wd$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')"
work="$(mktemp -d /tmp/weft-dashboard.XXXXXX)"
weft() { node "$checkout/dist/cli.js" "$@"; }
say() { echo "demo-lab: $*" >&2; }
prometheus_pid=""
etcd_pid=""

cleanup() {
  set +e
  [ -n "$etcd_pid" ] && kill -CONT "$etcd_pid" 2>/dev/null
  [ -n "$prometheus_pid" ] && kill "$prometheus_pid" 2>/dev/null && wait "$prometheus_pid" 2>/dev/null
  weft lab down --name "$lab" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] || { say "needs root (network namespaces)"; exit 1; }
for tool in prometheus chromium iperf3 nft jq; do
  command -v "$tool" >/dev/null || { say "needs $tool (apt install prometheus chromium iperf3 nftables jq)"; exit 1; }
done

say "lab $lab up (3 hosts, udp)"
weft lab up --name "$lab" --hosts 3 --containers 1 --backend udp --internet=false \
  --daemon-arg=--healthz-ip=0.0.0.0 --daemon-arg=--subnet-lease-ttl=120 --daemon-arg=--subnet-lease-renew-margin=1 \
  --daemon-arg=--peer-probe-interval=10 >/dev/null
state="/run/weft-lab/$lab/state.json"
host_address() { jq -r --arg h "$1" '.hosts[] | select(.name == $h) | .underlayAddress' "$state"; }
container_address() { jq -r --arg c "$1" '.containers[] | select(.name == $c) | .address' "$state"; }
etcd_pid="$(jq -r '.etcd.pid' "$state")"
port="$(jq -r '.hosts[0].healthzPort' "$state")"

{
  echo "global: { scrape_interval: 5s, evaluation_interval: 5s }"
  echo "scrape_configs:"
  echo "  - job_name: weft"
  echo "    static_configs:"
  for host in h1 h2 h3; do
    echo "      - targets: ['$(host_address "$host"):$port']"
    echo "        labels: { instance: $host }"
  done
} > "$work/prometheus.yml"
ip netns exec "$lab-etcd" prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address=127.0.0.1:9090 --log.level=warn > "$work/prometheus.log" 2>&1 &
prometheus_pid=$!
started=$(date +%s)
at() { local wait=$((started + $1 - $(date +%s))); [ "$wait" -gt 0 ] && sleep "$wait"; return 0; }

at 60
say "iperf3 h1c1 → h2c1, 200 Mb/s, 60 s"
ip netns exec "$lab-h2c1" iperf3 -s -1 -D -p 5201
sleep 1
ip netns exec "$lab-h1c1" iperf3 -c "$(container_address h2c1)" -b 200M -t 60 -p 5201 >/dev/null

at 150
say "300 garbage datagrams to h2:8285"
ip netns exec "$lab-h1" bash -c "for i in \$(seq 300); do head -c 60 /dev/urandom > /dev/udp/$(host_address h2)/8285; done"

at 180
say "etcd frozen for 40 s"
kill -STOP "$etcd_pid"
sleep 40
kill -CONT "$etcd_pid"

at 270
say "h3 drops UDP 8285 for 150 s"
ip netns exec "$lab-h3" nft -f - <<'EOF'
table inet weftdemo {
  chain input {
    type filter hook input priority -10;
    udp dport 8285 drop
  }
}
EOF
sleep 150
ip netns exec "$lab-h3" nft delete table inet weftdemo

at 480
say "rendering"
ip netns exec "$lab-etcd" node "$here/render-queries.mjs" http://127.0.0.1:9090 "$work/dashboard.html" 8
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1120,2050 \
  --screenshot="$out" "file://$work/dashboard.html" >/dev/null 2>&1
say "wrote $out"
