# Sourced by the scripts beside it: `two_host_lab PREFIX BACKEND [Key=value…]` builds a 2-host lab
# with one container per host (taken down when the script exits) and sets name (the lab), pids
# (its daemons), ip2 (h2c1's IPv4 address); cpu prints the daemons' CPU ticks (threads included).
weft() { node dist/cli.js "$@"; }
two_host_lab() {
  name=$1$$
  local backend=$2; shift 2
  local opts=(); for o in "$@"; do opts+=(--backend-option "$o"); done
  trap 'weft lab down --name $name >/dev/null 2>&1 || true' EXIT
  weft lab up --name "$name" --hosts 2 --containers 1 --backend "$backend" --internet=false "${opts[@]}" >"/tmp/$name.up" 2>&1 || { tail "/tmp/$name.up"; exit 1; }
  pids=$(node -e 'const s=require(process.argv[1]); console.log(s.hosts.map(h=>h.daemonPid).join(" "))' "/run/weft-lab/$name/state.json")
  ip2=$(ip netns exec "$name-h2c1" ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
}
cpu() { local t=0 p; for p in $pids; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $t; }
