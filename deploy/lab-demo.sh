#!/bin/sh
# weft's main job on one machine: a 3-host cluster in network namespaces, end to end.
#
#   sudo ./deploy/lab-demo.sh                  # 3 hosts, vxlan, 2 containers each
#   sudo BACKEND=host-gw HOSTS=4 ./deploy/lab-demo.sh
#   sudo DOCKER=1 ./deploy/lab-demo.sh         # a real dockerd per host, Docker containers
#   sudo DOCKER=network ./deploy/lab-demo.sh   # the same with flannel's `docker network create` recipe
#   sudo IPV6=1 ./deploy/lab-demo.sh           # dual-stack: IPv4 and IPv6 underlay and overlay
#   sudo IPV6_ONLY=1 ./deploy/lab-demo.sh      # IPv6-only overlay (EnableIPv4 false) over the dual-stack underlay
#
# Installs what is missing on first use (Debian/Ubuntu: etcd-server, etcd-client, iproute2,
# iputils-ping, nftables, iperf3, curl; node_modules via npm ci), builds weft, brings the lab up,
# runs `weft lab check` and prints how to take it down. Everything it creates lives in
# network namespaces named <NAME>-*; nothing is added to this machine's own network.
# DOCKER=1 also needs docker.io and busybox-static (installed without starting the machine's own
# dockerd); each lab host then runs its own dockerd with everything under the lab dir.
set -eu

NAME="${NAME:-weft}"
HOSTS="${HOSTS:-3}"
BACKEND="${BACKEND:-vxlan}"
CONTAINERS="${CONTAINERS:-2}"
DOCKER="${DOCKER:-}"
IPV6="${IPV6:-}"
IPV6_ONLY="${IPV6_ONLY:-}"

cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "lab-demo: network namespaces need root; re-running with sudo" >&2
  exec sudo -E NAME="$NAME" HOSTS="$HOSTS" BACKEND="$BACKEND" CONTAINERS="$CONTAINERS" DOCKER="$DOCKER" IPV6="$IPV6" IPV6_ONLY="$IPV6_ONLY" "$0" "$@"
fi

# 1. System packages (only the missing ones; apt-get update only when something is missing).
missing=""
docker_packages=""
[ -n "$DOCKER" ] && docker_packages="docker.io busybox-static util-linux"
for pkg in etcd-server etcd-client iproute2 iputils-ping nftables iperf3 curl $docker_packages; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "lab-demo: missing packages:$missing — install them with your package manager, then re-run" >&2
    exit 1
  fi
  echo "lab-demo: installing$missing" >&2
  # Start no service while installing (docker.io would start this machine's own dockerd).
  policy_added=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_added=1
  fi
  status=0
  DEBIAN_FRONTEND=noninteractive apt-get update -qq || status=$?
  [ "$status" -eq 0 ] && { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing || status=$?; }
  [ -n "$policy_added" ] && rm -f /usr/sbin/policy-rc.d
  [ "$status" -eq 0 ] || exit "$status"
fi

# 2. Node.js 20+ (Debian's own nodejs may be older: then install Node 20 from nodejs.org or NodeSource).
if ! command -v node >/dev/null 2>&1; then
  echo "lab-demo: node is not installed; weft needs Node.js 20 or newer" >&2
  exit 1
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "lab-demo: node $(node -v) is too old; weft needs Node.js 20 or newer" >&2
  exit 1
fi

# 3. Dependencies and build. The kernel backends (vxlan, host-gw) need only the TypeScript
#    build; udp and userspace vxlan also need the native engine (a C compiler and python3).
if [ ! -d node_modules ]; then
  echo "lab-demo: npm ci" >&2
  npm ci --ignore-scripts --no-audit --no-fund
fi
if [ ! -f dist/cli.js ] || [ -n "$(find src -name '*.ts' -newer dist/cli.js | head -n 1)" ]; then
  echo "lab-demo: building weft (npm run build:ts)" >&2
  npm run --silent build:ts
fi
if [ ! -f native/build/Release/weft_engine.node ] || [ -n "$(find native/src -newer native/build/Release/weft_engine.node 2>/dev/null | head -n 1)" ]; then
  echo "lab-demo: building the native engine (npm run build:native)" >&2
  if ! npm run --silent build:native >/tmp/weft-lab-demo-native.log 2>&1; then
    if [ "$BACKEND" = "udp" ]; then
      echo "lab-demo: the native engine did not build (see /tmp/weft-lab-demo-native.log; needs build-essential and python3); the udp backend needs it" >&2
      exit 1
    fi
    echo "lab-demo: warning: the native engine did not build (see /tmp/weft-lab-demo-native.log); $BACKEND does not need it" >&2
  fi
fi

weft() { node dist/cli.js "$@"; }

# 4. A lab of the same name from an earlier run (or a crash) is removed first.
if [ -e "/run/weft-lab/$NAME/state.json" ] || ip netns list | grep -q "^$NAME-"; then
  echo "lab-demo: removing the previous lab \"$NAME\"" >&2
  weft lab down --name "$NAME"
fi

# 5. Up, check, and tell the user what next.
# With Docker, weft masquerades (--ip-masq) and dockerd does not, as on a real host (Vagrantfile).
case "$DOCKER" in
  "") docker_flags="" ;;
  network) docker_flags="--docker-network --ip-masq" ;;
  *) docker_flags="--docker --ip-masq" ;;
esac
ipv6_flags=""
[ -n "$IPV6" ] && ipv6_flags="--ipv6"
# The lab's IPv6-only overlay needs plain containers (it reads no IPv6 address from Docker's).
[ -n "$IPV6_ONLY" ] && ipv6_flags="--ipv6-only"
if [ -n "$IPV6_ONLY" ] && [ -n "$DOCKER" ]; then
  echo "lab-demo: IPV6_ONLY=1 does not combine with DOCKER" >&2
  exit 2
fi
weft lab up --name "$NAME" --hosts "$HOSTS" --backend "$BACKEND" --containers "$CONTAINERS" $docker_flags $ipv6_flags
echo
status=0
weft lab check --name "$NAME" || status=$?
echo
echo "Explore:   node dist/cli.js lab status --name $NAME"
echo "           node dist/cli.js lab exec --name $NAME h1c1 -- ping -c 3 <address of another container>"
if [ -n "$DOCKER" ]; then
  echo "           docker --host=unix:///run/weft-lab/$NAME/h1/docker/docker.sock ps"
fi
case "$BACKEND" in
  vxlan)
    if [ -n "$IPV6_ONLY" ]; then
      echo "           node dist/cli.js lab exec --name $NAME h1 -- ip -d link show flannel-v6.1"
    else
      echo "           node dist/cli.js lab exec --name $NAME h1 -- ip -d link show flannel.1"
    fi
    ;;
  udp) echo "           node dist/cli.js lab exec --name $NAME h1 -- ip -d link show flannel0" ;;
  *) echo "           node dist/cli.js lab exec --name $NAME h1 -- ip route" ;;
esac
echo "Take down: node dist/cli.js lab down --name $NAME"
exit "$status"
