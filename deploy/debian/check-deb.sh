#!/usr/bin/env bash
# Installs weft's .deb on a clean Debian 12 and shows that it runs (`npm run check:deb`, as root):
#
#   host (this machine)                        netns weftdeb-<pid>
#   ─────────────────────────                  ──────────────────────────────────────────────
#   cached rootfs: mmdebstrap minbase          lo 127.0.0.1   etcd (this machine's binary)
#   bookworm + man-db, bash-completion   ──►   eth0 (veth to gw0) 192.168.99.2/24, default via .1
#   extracted into a temporary directory       chroot <rootfs>: dpkg -i weft.deb, apt-get install -f,
#                                              weft --version/--help, man, completion,
#                                              weft config set, weft run --backend alloc, SIGTERM
#
# Nothing is installed on this machine: the package goes into the chroot, the daemon runs in a
# network namespace of its own (so its nftables table and lease live there). Everything made is
# removed on exit, also on failure. The rootfs is built once (about a minute) and cached.
#
#   deploy/debian/check-deb.sh [weft_<version>_amd64.deb]   (default: the checkout's; built if missing)
# Environment: WEFT_ROOTFS (default /var/cache/weft-deb/bookworm-minbase.tar),
#              WEFT_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
checkout="$(cd "$here/../.." && pwd)"
rootfs_tar="${WEFT_ROOTFS:-/var/cache/weft-deb/bookworm-minbase.tar}"
mirror="${WEFT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

say() { echo "check-deb: $*" >&2; }
die() { say "FAILED: $*"; exit 1; }
started=$(date +%s.%N)
phase_start=$started
timings=()
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
phase() { local now; now=$(date +%s.%N); timings+=("$(printf '  %-32s %6s s' "$1" "$(elapsed "$phase_start" "$now")")"); phase_start=$now; }

[ "$(id -u)" -eq 0 ] || die "needs root (chroot, mount, network namespaces)"
command -v etcd >/dev/null || die "needs etcd on this machine for the daemon run (apt-get install etcd-server)"

version="$(node -p "require('$checkout/package.json').version")"
deb="${1:-$checkout/weft_${version}_amd64.deb}"
if [ ! -f "$deb" ]; then
  say "$deb does not exist: building it"
  "$here/build-deb.sh"
  phase "build the .deb"
fi

# 1. The clean Debian 12, cached. The packages weft depends on are downloaded into the image's
#    apt cache (not installed), so apt-get install -f needs no network on later runs.
if [ ! -f "$rootfs_tar" ]; then
  command -v mmdebstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends mmdebstrap >/dev/null
  say "building $rootfs_tar with mmdebstrap (bookworm, minbase) from $mirror"
  mkdir -p "$(dirname "$rootfs_tar")"
  trap 'rm -f "$rootfs_tar.partial.tar"' EXIT
  mmdebstrap --quiet --variant=minbase --include=man-db,bash-completion \
    --skip=cleanup/apt/lists,cleanup/apt/cache \
    --customize-hook='chroot "$1" apt-get install --download-only -y -qq iproute2 nftables iptables libstdc++6 libgcc-s1' \
    bookworm "$rootfs_tar.partial.tar" "$mirror"
  mv "$rootfs_tar.partial.tar" "$rootfs_tar"
  phase "mmdebstrap (once, then cached)"
fi

work="$(mktemp -d /var/tmp/weft-check-deb.XXXXXX)"
root="$work/root"
ns="weftdeb-$$"
etcd_pid=""
weft_pid=""
cleanup() {
  local status=$?
  [ -z "$weft_pid" ] || kill "$weft_pid" 2>/dev/null || true
  [ -z "$etcd_pid" ] || kill "$etcd_pid" 2>/dev/null || true
  [ -z "$weft_pid$etcd_pid" ] || wait 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  mountpoint -q "$root/proc" && umount "$root/proc"
  # --one-file-system: never follow a mount that failed to go away.
  rm -rf --one-file-system "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir "$root"
tar -xf "$rootfs_tar" -C "$root"
mount -t proc proc "$root/proc"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$deb" "$root/tmp/weft.deb"
phase "extract the rootfs"
# A clean environment: nothing of this machine's PATH (or its node) leaks into the chroot.
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb "$@"; }

# 2. Install as an operator would: dpkg -i (stops at the missing Depends), then apt-get install -f.
say "dpkg -i weft.deb"
in_root dpkg -i /tmp/weft.deb >"$work/dpkg.log" 2>&1 || grep -q "dependency problems" "$work/dpkg.log" || { cat "$work/dpkg.log"; die "dpkg -i"; }
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -f -y -q >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; die "apt-get install -f"; }
in_root dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\n' weft iproute2 nftables iptables
phase "dpkg -i + apt-get install -f"

# 3. What the operator sees first.
! in_root sh -c 'command -v node' >/dev/null || die "the clean rootfs has a node on its PATH"
echo "node on the chroot's PATH: none; bundled: $(in_root /usr/lib/weft/node/bin/node -v)"
out="$(in_root weft --version)"; echo "weft --version: $out"; [ "$out" = "$version" ] || die "weft --version printed $out"
in_root weft run --help >"$work/run-help.txt"
for group in etcd: Interface: Lease: "Traffic rules:" Health: "weft's own:" FLANNELD_ETCD_ENDPOINTS; do
  grep -q "$group" "$work/run-help.txt" || die "weft run --help has no $group"
done
echo "weft run --help: $(wc -l <"$work/run-help.txt") lines, groups etcd/Interface/Lease/Traffic rules/Health/weft's own"
in_root man -P cat weft >"$work/man.txt" 2>/dev/null
grep -q -- "--etcd-endpoints" "$work/man.txt" && grep -q "/etc/default/weft" "$work/man.txt" || die "man weft lacks the flags or FILES"
echo "man weft: $(wc -l <"$work/man.txt") lines; $(head -n 1 "$work/man.txt" | tr -s ' ')"
complete_words() {
  in_root bash -c '. /usr/share/bash-completion/bash_completion; _completion_loader weft
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _weft_yargs_completions; echo "${COMPREPLY[*]}"' completion "$@"
}
out="$(complete_words weft ru)"; echo "complete 'weft ru': $out"; [ "$out" = run ] || die "completion of 'weft ru'"
out="$(complete_words weft run --etcd-e)"; echo "complete 'weft run --etcd-e': $out"; [ "$out" = --etcd-endpoints ] || die "completion of --etcd-e"
out="$(in_root stat -c '%a %U:%G' /etc/default/weft)"; echo "/etc/default/weft: $out, conffile: $(in_root dpkg-query -W -f='${Conffiles}' weft | awk '{print $1}')"
[ "$out" = "600 root:root" ] || die "/etc/default/weft is $out"
phase "version, help, man, completion"

# 4. The daemon, configured through /etc/default/weft as systemd would (EnvironmentFile=), in its
#    own network namespace with an etcd on the namespace's loopback.
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add eth0 type veth peer name gw0
ip -n "$ns" addr add 192.168.99.2/24 dev eth0
ip -n "$ns" link set gw0 up
ip -n "$ns" link set eth0 up
ip -n "$ns" route add default via 192.168.99.1
# nsenter (not ip netns exec, which forks) so that $! is the process itself, to be stopped by PID.
nsenter --net="/run/netns/$ns" etcd --data-dir "$work/etcd" --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  >"$work/etcd.log" 2>&1 &
etcd_pid=$!
for _ in $(seq 100); do ip netns exec "$ns" etcdctl --endpoints=http://127.0.0.1:2379 endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
ip netns exec "$ns" etcdctl --endpoints=http://127.0.0.1:2379 endpoint health >/dev/null 2>&1 || { cat "$work/etcd.log"; die "etcd did not start"; }
cat >"$root/etc/default/weft" <<'DEFAULT'
FLANNELD_ETCD_ENDPOINTS=http://127.0.0.1:2379
FLANNELD_IFACE=eth0
FLANNELD_HEALTHZ_IP=127.0.0.1
FLANNELD_HEALTHZ_PORT=9471
DEFAULT
# Only `weft run` reads the whole file: other commands refuse FLANNELD_* flags that are not theirs.
in_netns() { nsenter --net="/run/netns/$ns" chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }
in_netns weft config set '{"Network":"10.66.0.0/16","Backend":{"Type":"alloc"}}' --etcd-endpoints=http://127.0.0.1:2379
phase "netns, etcd, weft config set"
# Started directly (a backgrounded function would be a subshell, and $! its PID): every step execs.
nsenter --net="/run/netns/$ns" chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  sh -c 'set -a; . /etc/default/weft; set +a; exec weft run' >"$work/weft.log" 2>&1 &
weft_pid=$!
ready=""
for _ in $(seq 200); do
  if [ -f "$root/run/flannel/subnet.env" ] && in_netns /usr/lib/weft/node/bin/node -e \
    'fetch("http://127.0.0.1:9471/readyz").then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' 2>/dev/null; then ready=1; break; fi
  kill -0 "$weft_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$ready" ] || { cat "$work/weft.log"; die "weft run did not become ready"; }
phase "weft run until /readyz"
echo "subnet.env:"; sed 's/^/  /' "$root/run/flannel/subnet.env"
in_netns weft leases --etcd-endpoints=http://127.0.0.1:2379
kill -TERM "$weft_pid"
status=0; wait "$weft_pid" || status=$?
weft_pid=""
echo "weft run after SIGTERM: exit $status; log: $(wc -l <"$work/weft.log") lines, last: $(tail -n 1 "$work/weft.log" | cut -c1-160)"
[ "$status" -eq 0 ] || { cat "$work/weft.log"; die "weft run exited $status on SIGTERM"; }
phase "weft leases, SIGTERM"

# 5. Purge leaves nothing of weft behind.
in_root dpkg --purge weft >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; die "dpkg --purge"; }
for path in /usr/bin/weft /usr/lib/weft /etc/default/weft /var/lib/weft /lib/systemd/system/weft.service; do
  [ ! -e "$root$path" ] || die "$path is still there after purge"
done
echo "dpkg --purge weft: /usr/bin/weft, /usr/lib/weft, /etc/default/weft, /var/lib/weft gone"
phase "dpkg --purge"

printf '%s\n' "${timings[@]}"
echo "check-deb: OK in $(elapsed "$started" "$(date +%s.%N)") s"
