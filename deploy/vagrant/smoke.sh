#!/usr/bin/env bash
# Boots the Vagrant lab for real and checks weft under real systemd (`npm run test:vagrant`, as root).
#
#   this machine                     network namespace wvg<random> (no uplink: nothing leaves it)
#   ─────────────────────            ──────────────────────────────────────────────────────────────
#   box: build-box.sh (cached)       libvirtd (own /run/libvirt, /var/lib/libvirt, /etc/libvirt,
#   .deb: npm run package:deb   ──►           mount namespace) + vagrant
#   Vagrantfile (this checkout)        virbr mgmt 192.168.121.0/24 (isolated, DHCP for ssh)
#                                      virbr lab  192.168.56.0/24  (isolated)
#                                        ├─ etcd  .10  etcd.service
#                                        ├─ weft1 .11  weft.service (Type=notify) → docker.service
#                                        └─ weft2 .12  weft.service (Type=notify) → docker.service
#
# Both libvirt networks are isolated (no <forward>), and they live in a namespace with only `lo`
# besides them: no VM packet can reach any address outside it. Everything made is removed on exit,
# also on failure: `vagrant destroy`, libvirtd and every qemu/dnsmasq it started (by PID), the
# namespace, the work directory. The box and Vagrant's copy of it stay cached.
#
#   deploy/vagrant/smoke.sh
# Environment: WEFT_DEB (use this .deb instead of building one), WEFT_VAGRANT_CACHE
#   (/var/cache/weft-vagrant), WEFT_LIBVIRT_DRIVER (kvm|qemu; default: see pick_driver),
#   WEFT_VAGRANT_KEEP=1 (leave the VMs running for a look; prints how to reach and remove them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
checkout="$(cd "$here/../.." && pwd)"
cache="${WEFT_VAGRANT_CACHE:-/var/cache/weft-vagrant}"
name="wvg$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
started=$(date +%s.%N)

say() { echo "smoke: $*" >&2; }
die() { say "FAILED: $*"; exit 1; }
now() { date +%s.%N; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

[ "$(id -u)" -eq 0 ] || die "needs root (network namespace, libvirtd, loop devices for the box)"

# --- The table of checks -------------------------------------------------------------------------
rows=()
failures=0
# check <description> <command…>: runs the command, records PASS/FAIL and its time; the command's
# last output line becomes the row's detail.
# The command runs in this shell (not a subshell), so it may set variables for later checks.
check() {
  local description="$1"; shift
  local t0 output status
  t0=$(now)
  set +e
  "$@" > "$work/check.out" 2>&1
  status=$?
  set -e
  output="$(cat "$work/check.out")"
  local detail
  detail="$(printf '%s\n' "$output" | tail -n 1 | cut -c1-100)"
  if [ $status -eq 0 ]; then
    rows+=("$(printf '| %-62s | PASS | %6s | %s' "$description" "$(seconds "$t0" "$(now)")" "$detail")")
  else
    rows+=("$(printf '| %-62s | FAIL | %6s | %s' "$description" "$(seconds "$t0" "$(now)")" "$detail")")
    failures=$((failures + 1))
    say "check failed: $description"
    printf '%s\n' "$output" | tail -n 25 | sed 's/^/    /' >&2
  fi
  return 0
}
print_table() {
  echo
  printf '| %-62s | %-4s | %6s | %s\n' "check" "" "s" "detail"
  printf '|%s|%s|%s|%s\n' "$(printf -- '-%.0s' $(seq 64))" "------" "--------" "--------"
  printf '%s\n' "${rows[@]}"
  echo
  echo "total $(seconds "$started" "$(now)") s, $failures failed"
}

# --- Prerequisites -------------------------------------------------------------------------------
need=()
for pkg in vagrant vagrant-libvirt libvirt-daemon-system qemu-system-x86 qemu-utils dnsmasq-base mmdebstrap extlinux syslinux-common; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  # No service may start while installing: libvirt-daemon-system would start the machine's own
  # libvirtd with its NAT'ed default network.
  policy_added=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_added=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
  [ -n "$policy_added" ] && rm -f /usr/sbin/policy-rc.d
fi

# kvm where /dev/kvm can run a stock kernel; qemu (software emulation, several times slower)
# otherwise. Measured on this project's CI machines: /dev/kvm is there, but it is PVM
# (kvm_pvm: a hypervisor for paravirtualized guests), which runs SeaBIOS and then stops in the
# first protected-mode code of any boot loader or stock kernel (KVM "emulation failure").
pick_driver() {
  if [ -n "${WEFT_LIBVIRT_DRIVER:-}" ]; then echo "$WEFT_LIBVIRT_DRIVER"; return; fi
  if [ ! -w /dev/kvm ]; then say "no usable /dev/kvm: software emulation (libvirt driver qemu)"; echo qemu; return; fi
  if [ -d /sys/module/kvm_pvm ]; then say "/dev/kvm is kvm_pvm, which cannot boot a stock Debian kernel: software emulation (libvirt driver qemu)"; echo qemu; return; fi
  echo kvm
}
driver="$(pick_driver)"
# The cluster's backend (BACKEND=udp proves the TUN device under DevicePolicy=closed too).
backend="${BACKEND:-vxlan}"
# BACKEND=wireguard runs flannel's wireguard backend on the VMs' stock Debian kernel, which has
# the WireGuard module: the "kernel" implementation, which this machine's kernel cannot run.
case "$backend" in vxlan|host-gw|udp|wireguard) ;; *) die "BACKEND=$backend: the smoke runs vxlan, host-gw, udp or wireguard";; esac

work="$(mktemp -d /var/tmp/weft-vagrant.XXXXXX)"
chmod 0755 "$work"
libvirtd_pid=""
cleanup() {
  local status=$?
  set +e
  if [ "${WEFT_VAGRANT_KEEP:-}" = 1 ] && [ -n "$libvirtd_pid" ]; then
    say "kept: namespace $name, libvirtd $libvirtd_pid, work $work. Remove with:"
    say "  ip netns exec $name env $(vagrant_env_line) vagrant destroy -f; kill $libvirtd_pid; ip netns del $name; rm -rf $work"
    return
  fi
  if [ -n "$libvirtd_pid" ]; then
    say "vagrant destroy"
    in_ns vagrant destroy -f >/dev/null 2>&1
    kill "$libvirtd_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$libvirtd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$libvirtd_pid" 2>/dev/null
  fi
  # Whatever libvirtd left (a VM or dnsmasq of a failed run), by the PIDs in its own run directory.
  local pidfile pid
  for pidfile in "$work"/run/libvirt/qemu/*.pid "$work"/run/libvirt/network/*.pid; do
    [ -f "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  done
  ip netns pids "$name" 2>/dev/null | while read -r pid; do kill -9 "$pid" 2>/dev/null; done
  ip netns del "$name" 2>/dev/null
  if [ $status -ne 0 ] || [ $failures -gt 0 ]; then
    local log
    for log in "$work"/serial/*.log; do
      [ -f "$log" ] || continue
      say "last lines of $(basename "$log"):"
      tail -n 15 "$log" | tr -d '\r' | sed 's/^/    /' >&2
    done
  fi
  rm -rf "$work"
  return $status
}
trap cleanup EXIT

# --- The box, the package ------------------------------------------------------------------------
export VAGRANT_HOME="$cache/vagrant.d"
box_ready() {
  local box box_id
  box="$("$here/build-box.sh")" || return 1
  box_id="$(cat "$box.recipe")"
  if [ "$(cat "$VAGRANT_HOME/weft-box.added" 2>/dev/null)" != "$box_id" ]; then
    vagrant box add --force --name weft/bookworm64 --provider libvirt "$box" >/dev/null || return 1
    echo "$box_id" > "$VAGRANT_HOME/weft-box.added"
  fi
  echo "$(basename "$box") (recipe $box_id) added to $VAGRANT_HOME"
}
check "box weft/bookworm64 (deploy/vagrant/build-box.sh, cached)" box_ready
[ $failures -eq 0 ] || { print_table; exit 1; }

deb="${WEFT_DEB:-}"
if [ -z "$deb" ]; then
  t0=$(now)
  say "building the .deb (npm run package:deb)"
  (cd "$checkout" && WEFT_DEB_OUT="$work" npm run --silent package:deb >/dev/null)
  deb="$(ls "$work"/weft_*_amd64.deb)"
fi
deb="$(readlink -f "$deb")"
[ -f "$deb" ] || die "no .deb at $deb"

# --- libvirtd in its own network and mount namespaces --------------------------------------------
ip netns add "$name"
ip -n "$name" link set lo up
mkdir -p "$work/etc" "$work/run/libvirt" "$work/lib" "$work/log" "$work/cache" "$work/serial" "$work/dot"
cp -a /etc/libvirt/. "$work/etc/"
# root's socket without polkit (no polkitd here); no per-VM cgroups, mount namespaces or
# security labels (no systemd, no AppArmor in this sandbox); qemu's console logs to files.
cat >> "$work/etc/libvirtd.conf" <<'EOF'
auth_unix_ro = "none"
auth_unix_rw = "none"
unix_sock_group = "root"
EOF
cat >> "$work/etc/qemu.conf" <<'EOF'
user = "root"
group = "root"
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
EOF
rm -rf "$work/etc/qemu/networks/autostart" "$work/etc/qemu/networks/default.xml"   # no NAT'ed "default" network
mkdir -p /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt
nsenter --net="/run/netns/$name" -- unshare --mount --propagation private -- sh -c "
  mount --bind '$work/etc' /etc/libvirt &&
  mount --bind '$work/run/libvirt' /run/libvirt &&
  mount --bind '$work/lib' /var/lib/libvirt &&
  mount --bind '$work/log' /var/log/libvirt &&
  mount --bind '$work/cache' /var/cache/libvirt &&
  mount -t sysfs sysfs /sys &&
  exec libvirtd --pid-file '$work/run/libvirtd.pid'" >"$work/libvirtd.log" 2>&1 &
libvirtd_pid=$!
socket="$work/run/libvirt/libvirt-sock"
for _ in $(seq 100); do [ -S "$socket" ] && break; kill -0 "$libvirtd_pid" 2>/dev/null || break; sleep 0.1; done
[ -S "$socket" ] || { cat "$work/libvirtd.log" >&2; die "libvirtd did not start"; }
export LIBVIRT_DEFAULT_URI="qemu:///system?socket=$socket"

vagrant_env=(VAGRANT_HOME="$VAGRANT_HOME" VAGRANT_CWD="$checkout" VAGRANT_DOTFILE_PATH="$work/dot"
  VAGRANT_DEFAULT_PROVIDER=libvirt LIBVIRT_DEFAULT_URI="$LIBVIRT_DEFAULT_URI" VAGRANT_CHECKPOINT_DISABLE=1
  BOX=weft/bookworm64 WEFT_DEB="$deb" WEFT_LIBVIRT_DRIVER="$driver" WEFT_SERIAL_DIR="$work/serial" HOSTS=2 BACKEND="$backend")
vagrant_env_line() { printf '%q ' "${vagrant_env[@]}"; }
in_ns() { nsenter --net="/run/netns/$name" -- env "${vagrant_env[@]}" "$@"; }
check "libvirtd in namespace $name (driver $driver)" echo "pid $libvirtd_pid, socket $socket"

# --- Up ------------------------------------------------------------------------------------------
say "vagrant up etcd weft1 weft2 (driver $driver; with software emulation this takes minutes)"
up() {
  in_ns vagrant up --no-tty etcd weft1 weft2 > "$work/vagrant-up.log" 2>&1 || { tail -n 40 "$work/vagrant-up.log"; return 1; }
  # The provisioning's last line per host: "weftN: FLANNEL_NETWORK=… FLANNEL_SUBNET=… …".
  grep -oE "weft[12]: FLANNEL_.*FLANNEL_SUBNET=[0-9./]+" "$work/vagrant-up.log" | sed 's/FLANNEL_NETWORK=[^ ]* //' | tr '\n' ' '
  echo
}
check "vagrant up etcd + 2 hosts, provisioned from the .deb" up
[ $failures -eq 0 ] || { print_table; exit 1; }
in_ns vagrant ssh-config etcd weft1 weft2 > "$work/ssh_config" 2>/dev/null
# on <vm> <script>: runs a bash script as root in a VM (ssh straight, not `vagrant ssh`: faster).
on() { nsenter --net="/run/netns/$name" -- ssh -F "$work/ssh_config" -o ConnectTimeout=10 -o LogLevel=ERROR "$1" sudo bash -s <<<"set -euo pipefail; $2"; }

# --- Checks under real systemd -------------------------------------------------------------------
notify_ready() {
  on "$1" '
    eval "$(systemctl show weft -p Type -p ActiveState -p SubState -p NotifyAccess -p MainPID -p StatusText | sed "s/=\(.*\)/=\"\1\"/")"
    [ "$Type" = notify ] && [ "$ActiveState" = active ] && [ "$SubState" = running ] || { echo "Type=$Type $ActiveState/$SubState"; exit 1; }
    # The unit'"'"'s main process must be node itself (the launcher execs it): with NotifyAccess=main,
    # systemd takes READY=1 only from that PID. (Node 24 names its main thread "MainThread".)
    exe="$(readlink /proc/$MainPID/exe)"
    case "$exe" in */node) ;; *) echo "MainPID $MainPID is $exe, not node: READY=1 from node would be refused (NotifyAccess=$NotifyAccess)"; exit 1;; esac
    comm="$exe"
    curl_ready="$(exec 3<>/dev/tcp/127.0.0.1/9471 && printf "GET /readyz HTTP/1.0\r\n\r\n" >&3 && head -n1 <&3)"
    echo "Type=$Type $ActiveState/$SubState NotifyAccess=$NotifyAccess MainPID=$MainPID ($comm) readyz: ${curl_ready%$'"'"'\r'"'"'} status: $StatusText"'
}
check "weft1: weft.service active, Type=notify, READY=1 from node (MainPID)" notify_ready weft1
check "weft2: weft.service active, Type=notify, READY=1 from node (MainPID)" notify_ready weft2

docker_after_weft() {
  on "$1" '
    . /run/flannel/subnet.env
    weft_ready=$(systemctl show weft -p ActiveEnterTimestampMonotonic --value)
    docker_start=$(systemctl show docker -p ExecMainStartTimestampMonotonic --value)
    [ "$docker_start" -gt "$weft_ready" ] || { echo "dockerd started at $docker_start, before weft was ready at $weft_ready"; exit 1; }
    cmdline="$(tr "\0" " " < /proc/$(systemctl show docker -p MainPID --value)/cmdline)"
    case "$cmdline" in *"--bip=$FLANNEL_SUBNET --mtu=$FLANNEL_MTU"*) ;; *) echo "dockerd runs without weft'"'"'s --bip/--mtu: $cmdline"; exit 1;; esac
    docker0="$(ip -4 -o addr show docker0 | awk "{print \$4}")"
    [ "$docker0" = "$FLANNEL_SUBNET" ] || { echo "docker0 has $docker0, subnet.env says $FLANNEL_SUBNET"; exit 1; }
    echo "dockerd started $(( (docker_start - weft_ready) / 1000 )) ms after weft was ready, --bip=$FLANNEL_SUBNET --mtu=$FLANNEL_MTU"'
}
check "weft1: dockerd started after weft, with its --bip/--mtu" docker_after_weft weft1
check "weft2: dockerd started after weft, with its --bip/--mtu" docker_after_weft weft2

server_ip=""
start_server() {
  server_ip="$(on weft2 '
    docker rm -f web >/dev/null 2>&1 || true
    docker run -d --name web weft/busybox sh -c "mkdir -p /www && echo served-by-weft2 > /www/index.html && exec httpd -f -p 80 -h /www" >/dev/null
    docker inspect -f "{{.NetworkSettings.IPAddress}}" web')"
  [ -n "$server_ip" ] && echo "web on weft2 at $server_ip"
}
check "weft2: a Docker container serving HTTP" start_server
cross_host() {
  on weft1 "
    docker run --rm weft/busybox ping -c 3 -W 2 $server_ip | tail -n 2 | head -n 1
    # No wget -T: busybox 1.35's wget segfaults with it under software emulation (seen); timeout instead.
    body=\"\$(docker run --rm weft/busybox timeout 10 wget -q -O - http://$server_ip/)\"
    [ \"\$body\" = served-by-weft2 ] || { echo \"HTTP from $server_ip answered: \$body\"; exit 1; }
    echo \"ping ok, HTTP body \$body\""
}
check "weft1 container → weft2 container: ping and HTTP" cross_host

# wireguard: "auto" found the kernel module under the unit's sandbox (ProtectKernelModules=: the
# kernel loads it on demand), the device is flanneld's, and the peer has handshaken.
wireguard_kernel() {
  on "$1" '
    readyz="$(exec 3<>/dev/tcp/127.0.0.1/9471 && printf "GET /readyz?verbose HTTP/1.0\r\n\r\n" >&3 && cat <&3)"
    case "$readyz" in *"wireguardImplementation kernel"*) ;; *) echo "not on the kernel implementation: $(printf "%s" "$readyz" | tail -n 5 | tr "\n" " ")"; exit 1;; esac
    kind="$(ip -d -o link show flannel-wg | grep -o " wireguard " | tr -d " ")"
    [ "$kind" = wireguard ] || { echo "flannel-wg is not a kernel wireguard link: $(ip -d -o link show flannel-wg)"; exit 1; }
    peers="$(wg show flannel-wg peers | wc -l)"
    handshake="$(wg show flannel-wg latest-handshakes | awk "{print \$2}" | sort -n | tail -n 1)"
    [ "$peers" -ge 1 ] && [ "${handshake:-0}" -gt 0 ] || { echo "flannel-wg: $peers peers, latest handshake ${handshake:-none}"; exit 1; }
    echo "kernel WireGuard flannel-wg, $peers peer(s), listen port $(wg show flannel-wg listen-port), handshake $(( $(date +%s) - handshake )) s ago, mtu $(cat /sys/class/net/flannel-wg/mtu)"'
}
if [ "$backend" = wireguard ]; then
  check "weft1: wireguard on the kernel module (flannel-wg, a handshaken peer)" wireguard_kernel weft1
  check "weft2: wireguard on the kernel module (flannel-wg, a handshaken peer)" wireguard_kernel weft2
fi

# Where packets could be dropped on one host: every device's drop/error counters, the kernel's
# UDP/IP counters, and weft's own drop counters (the new process' after a restart), as "name value".
path_counters() {
  on "$1" '
    for f in /sys/class/net/*/statistics/*_dropped /sys/class/net/*/statistics/*_errors /sys/class/net/*/statistics/*_fifo_errors; do
      [ -r "$f" ] && echo "${f#/sys/class/net/} $(cat "$f")"; done
    nstat -asz 2>/dev/null | awk "NR > 1 && /Udp|Drop|Discard|Overflow|Fail|Err/ { print \$1, \$2 }"
    # A subshell: a failed exec redirection (weft not listening) ends the shell it runs in.
    ( exec 3<>/dev/tcp/127.0.0.1/9471 && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 &&
      grep -E "^weft_[a-z_]*(drop|error|lost)[a-z_]*(\\{.*\\})? [1-9]" <&3 | sed "s/^/weft-now:/" ) 2>/dev/null || true'
}
# The counters that moved between two path_counters outputs (weft-now lines: the value at the end).
counters_moved() {
  awk 'NR == FNR { before[$1] = $2; next } /^weft-now:/ { print; next } ($1 in before) && $2 != before[$1] { print $1, before[$1], "->", $2 }' "$1" "$2"
}
restart_hitless() {
  path_counters weft1 > "$work/counters1.before" || true
  path_counters weft2 > "$work/counters2.before" || true
  local status=0
  restart_ping > "$work/restart.out" 2>&1 || status=$?
  cat "$work/restart.out"
  # Kept after the run ($work is removed): the diagnostics are longer than a failed check shows.
  [ $status -eq 0 ] || restart_diagnostics | tee /var/tmp/weft-smoke-restart.diag
  return $status
}
restart_diagnostics() {
  echo "(these diagnostics are kept in /var/tmp/weft-smoke-restart.diag)"
  path_counters weft1 > "$work/counters1.after" || true
  path_counters weft2 > "$work/counters2.after" || true
  echo "--- counters that moved during the check: weft1"; counters_moved "$work/counters1.before" "$work/counters1.after" | head -n 30
  echo "--- weft2"; counters_moved "$work/counters2.before" "$work/counters2.after" | head -n 30
  for vm in weft1 weft2; do
    echo "--- $vm: journalctl -u weft since the restart"
    on $vm "journalctl -u weft --since '-3min' -o short-precise --no-pager | cut -c1-240 | tail -n 25" || true
  done
  # check() prints the last line as the row's detail: keep the verdict last.
  grep -E '^lost packets|^weft was not|^dockerd was|^the new weft' "$work/restart.out" | tail -n 1
}
restart_echoes=6000
restart_ping() {
  on weft1 "
    docker_pid_before=\$(systemctl show docker -p MainPID --value)
    weft_pid_before=\$(systemctl show weft -p MainPID --value)
    docker rm -f pinger >/dev/null 2>&1 || true
    # 60 s of echoes, and -W 30 (busybox waits that long for replies after the last echo): under
    # software emulation a restart leaves the path unread for ~24 s (seen: a 9 s stop, node's first
    # line 16 s after systemd's Starting, 7 s to the hand-over). With a 15 s stream and -W 5 the
    # stream ended while its last 176 echoes still waited in the TUN's queue, nothing dropped.
    # The container outlives its ping so that its ICMP counters can be read afterwards (below).
    docker run -d --name pinger weft/busybox sh -c 'ping -i 0.01 -c $restart_echoes -W 30 $server_ip; echo ping-done; sleep 900' >/dev/null
    sleep 4
    restarted_at=\$(date +%T.%N | cut -c1-12)
    systemctl restart weft
    for _ in \$(seq 1 900); do docker logs pinger 2>&1 | grep -q ping-done && break; sleep 1; done
    summary=\"\$(docker logs pinger | grep 'packets transmitted')\"
    # Echo replies that reached the pinger's network namespace (its ICMP layer counts each before
    # handing it to ping's raw socket). Echoes queued during a slow restart arrive as one burst
    # after the hand-over; seen in a software-emulated VM after an 82 s restart: 314 of 6000 lost
    # in scattered runs, no drop counter moved on either host: ping's raw socket overflowed (busybox
    # ping sets SO_RCVBUF to 2 x 56 + 7168 bytes, a dozen replies). The network's verdict is this count.
    replies=\"\$(docker exec pinger cat /proc/net/snmp | awk '\$1 == \"Icmp:\" { if (!seen) { for (i = 2; i <= NF; i++) col[\$i] = i; seen = 1 } else print \$col[\"InEchoReps\"] }')\"
    # Which echoes went unanswered, as seq ranges: a gap at the restart is a real loss.
    missing=\"\$(docker logs pinger | sed -n 's/.*seq=\\([0-9]*\\) .*/\\1/p' | sort -n | awk 'BEGIN { want = 0 } { if (\$1 > want) printf \"%d-%d \", want, \$1 - 1; want = \$1 + 1 } END { if (want < $restart_echoes) printf \"%d-%d\", want, $restart_echoes - 1 }')\"
    docker rm -f pinger >/dev/null
    [ \"\$(systemctl show weft -p MainPID --value)\" != \"\$weft_pid_before\" ] || { echo 'weft was not restarted'; exit 1; }
    [ \"\$(systemctl show docker -p MainPID --value)\" = \"\$docker_pid_before\" ] || { echo 'dockerd was restarted with weft'; exit 1; }
    # What the new process did with the data path (udp: taken from the fd store or not), for a failure too.
    path_lines=\"\$(journalctl -u weft _PID=\$(systemctl show weft -p MainPID --value) -o short-precise | grep -E 'data path|weft is ready' | cut -c1-260)\"
    read_by_ping=''
    case \"\$summary\" in
      *\"$restart_echoes packets received\"*) ;;
      *) if [ \"\$replies\" = $restart_echoes ]; then
           read_by_ping=\"; all $restart_echoes replies reached the container, ping's socket dropped some of the burst after the hand-over (unread seq \$missing)\"
         else
           echo \"lost packets: \$summary; \${replies:-?} replies reached the container; unanswered seq \$missing; restarted at \$restarted_at\"; echo \"\$path_lines\"; exit 1
         fi ;;
    esac
    # udp: the new process must have forwarded on the fds systemd kept in the unit's fd store.
    handed=''
    if [ $backend = udp ]; then
      handed=\"\$(journalctl -u weft _PID=\$(systemctl show weft -p MainPID --value) -o cat | grep -o 'data path handed over [0-9]* ms' | head -n1)\"
      [ -n \"\$handed\" ] || { echo 'the new weft did not take the data path from the fd store'; journalctl -u weft -n 20 -o cat | cut -c1-300; exit 1; }
      handed=\"; \$handed after its start (fd store)\"
    fi
    echo \"dockerd untouched (pid \$docker_pid_before); \$summary\$read_by_ping\$handed\""
}
check "weft1: systemctl restart weft: Docker not restarted, 0 pings lost ($backend)" restart_hitless

# wireguard: the same cluster on Debian's wireguard-go ($WEFT_WIREGUARD_IMPLEMENTATION per host),
# which weft starts as a unit of its own: a restart of weft.service must leave it running.
wireguard_go_switch() {
  on "$1" '
    echo WEFT_WIREGUARD_IMPLEMENTATION=wireguard-go >> /etc/default/weft
    systemctl restart weft
    unit=weft-wireguard-go-flannel-wg.service
    [ "$(systemctl show $unit -p ActiveState --value)" = active ] || { echo "$unit is not active: $(systemctl status $unit --no-pager 2>&1 | tail -n 3)"; exit 1; }
    pid="$(systemctl show $unit -p MainPID --value)"
    [ "$(cat /var/lib/weft/wireguard-go.flannel-wg.pid)" = "$pid" ] || { echo "the PID file says $(cat /var/lib/weft/wireguard-go.flannel-wg.pid), the unit $pid"; exit 1; }
    grep -q weft.service /proc/$pid/cgroup && { echo "wireguard-go $pid is in weft.service'"'"'s cgroup"; exit 1; }
    echo "wireguard-go pid $pid in $unit, $(wg show flannel-wg peers | wc -l) peer(s)"'
}
# The sum of one counter's moves over both hosts (path_counters files before and after).
counter_moved_on_both() {
  local total=0 host moved
  for host in 1 2; do
    moved="$(awk -v name="$1" 'NR == FNR { if ($1 == name) before = $2; next } $1 == name { print $2 - before }' "$work/counters$host.before" "$work/counters$host.after")"
    total=$(( total + ${moved:-0} ))
  done
  echo "$total"
}
wireguard_go_survives() {
  local before after status=0 replies unanswered overflow
  before="$(on weft1 'systemctl show weft-wireguard-go-flannel-wg.service -p MainPID --value')"
  restart_hitless || status=$?
  after="$(on weft1 'systemctl show weft-wireguard-go-flannel-wg.service -p MainPID --value')"
  [ "$before" = "$after" ] || { echo "wireguard-go was pid $before before the restart, $after after"; return 1; }
  [ $status -eq 0 ] && { echo "wireguard-go pid $before kept across the restart"; return 0; }
  # weft's restart does not touch this data path (the device, its sessions and wireguard-go stay),
  # but wireguard-go is a process: seen on the VMs' one emulated vCPU (2026-12-02, before its unit
  # had CPUWeight=1000), node's minutes-long start starved it and its sockets overflowed, 1885 of
  # 6000 echoes lost = exactly the UdpRcvbufErrors of both hosts. Such loss is that, not a gap in
  # the path: pass only if every unanswered echo is matched by a datagram a socket had no room for.
  replies="$(grep -o '[0-9]* replies reached the container' "$work/restart.out" | grep -o '^[0-9]*')"
  [ -n "$replies" ] || return 1
  unanswered=$(( restart_echoes - replies ))
  overflow="$(counter_moved_on_both UdpRcvbufErrors)"
  [ "$unanswered" -le "$overflow" ] || { echo "$unanswered echoes unanswered, only $overflow UDP receive-buffer drops on the hosts: a gap in the path"; return 1; }
  echo "wireguard-go pid $before kept across the restart; $unanswered of $restart_echoes echoes lost, all to UDP receive-buffer overflow ($overflow UdpRcvbufErrors on the hosts: wireguard-go starved of CPU), none to the path"
}
if [ "$backend" = wireguard ]; then
  check "weft1: switched to wireguard-go, in a unit of its own" wireguard_go_switch weft1
  check "weft2: switched to wireguard-go, in a unit of its own" wireguard_go_switch weft2
  check "weft1 container → weft2 container: ping and HTTP (wireguard-go)" cross_host
  check "weft1: systemctl restart weft keeps wireguard-go, no ping lost to the path" wireguard_go_survives
fi

config_error() {
  on weft1 '
    cp /etc/default/weft /etc/default/weft.good
    echo "FLANNELD_SUBNET_LEASE_RENEW_MARGIN=soon" >> /etc/default/weft
    since="$(date "+%Y-%m-%d %H:%M:%S")"
    systemctl restart weft && { echo "weft started with a broken /etc/default/weft"; exit 1; }
    sleep 5   # RestartSec=2: a restart loop would have started again by now
    eval "$(systemctl show weft -p ExecMainStatus -p NRestarts -p ActiveState | sed "s/=\(.*\)/=\"\1\"/")"
    errors="$(journalctl -u weft -p err --since "$since" -o cat | grep -ciE "subnet[-_]lease[-_]renew[-_]margin" || true)"
    preserved=no; [ -s /run/flannel/subnet.env ] && preserved=yes
    mv /etc/default/weft.good /etc/default/weft
    systemctl start weft
    [ "$ExecMainStatus" = 78 ] || { echo "exit status $ExecMainStatus, expected 78"; exit 1; }
    [ "$NRestarts" = 0 ] || { echo "restarted $NRestarts times despite RestartPreventExitStatus=78"; exit 1; }
    [ "$errors" -ge 1 ] || { echo "journalctl -p err shows no line naming the bad setting"; exit 1; }
    [ "$preserved" = yes ] || { echo "/run/flannel/subnet.env was removed while weft was down"; exit 1; }
    echo "exit 78, NRestarts=0, journalctl -p err: $(journalctl -u weft -p err --since "$since" -o cat | head -n1 | cut -c1-60)"'
}
check "weft1: config error → exit 78, no restart loop, in journalctl -p err" config_error

watchdog() {
  on weft2 '
    mkdir -p /etc/systemd/system/weft.service.d
    # 10 s, not less: systemd arms the watchdog when it starts the process, and under software
    # emulation with a loaded host, node took more than 3 s to load weft (seen: "failed to send
    # watchdog ping" during start-up with WatchdogSec=3s).
    printf "[Service]\nWatchdogSec=10s\n" > /etc/systemd/system/weft.service.d/watchdog.conf
    systemctl daemon-reload && systemctl restart weft
    pid=$(systemctl show weft -p MainPID --value)
    sleep 25
    eval "$(systemctl show weft -p WatchdogUSec -p MainPID -p ActiveState | sed "s/=\(.*\)/=\"\1\"/")"
    rm /etc/systemd/system/weft.service.d/watchdog.conf && systemctl daemon-reload && systemctl restart weft
    [ "$ActiveState" = active ] && [ "$MainPID" = "$pid" ] || { echo "the watchdog killed weft (pid $pid → $MainPID, $ActiveState)"; exit 1; }
    echo "WatchdogSec=10s for 25 s: same pid $pid, WatchdogUSec=$WatchdogUSec"'
}
check "weft2: WatchdogSec=10s: weft keeps the watchdog fed" watchdog

subnet_before=""
reboot_order() {
  subnet_before="$(on weft1 '. /run/flannel/subnet.env; echo $FLANNEL_SUBNET')"
  on weft1 'systemctl reboot' >/dev/null 2>&1 || true
  sleep 5
  local up=""
  # Software emulation boots in minutes, not seconds.
  local tries=60; [ "$driver" = qemu ] && tries=300
  for _ in $(seq $tries); do on weft1 'systemctl is-system-running --wait >/dev/null 2>&1 || true; true' >/dev/null 2>&1 && { up=1; break; }; sleep 3; done
  [ -n "$up" ] || { echo "weft1 did not come back"; return 1; }
  on weft1 "
    . /run/flannel/subnet.env
    [ \"\$FLANNEL_SUBNET\" = '$subnet_before' ] || { echo \"subnet changed across the reboot: $subnet_before → \$FLANNEL_SUBNET\"; exit 1; }
    [ \"\$(systemctl is-active weft docker | sort -u)\" = active ] || {
      systemctl is-active weft docker | paste -sd' '
      SYSTEMD_COLORS=0 systemctl status docker --no-pager --lines=0 | cut -c1-160
      journalctl -b -u docker -u containerd -p warning --no-pager -o cat | tail -n 8 | cut -c1-300
      echo 'weft or docker not active after the reboot (above: docker status and its warnings)'; exit 1; }
    weft_ready=\$(systemctl show weft -p ActiveEnterTimestampMonotonic --value)
    docker_start=\$(systemctl show docker -p ExecMainStartTimestampMonotonic --value)
    [ \"\$docker_start\" -gt \"\$weft_ready\" ] || { echo 'after the reboot dockerd started before weft was ready'; exit 1; }
    [ \"\$(ip -4 -o addr show docker0 | awk '{print \$4}')\" = \"\$FLANNEL_SUBNET\" ] || { echo 'docker0 is not on the subnet'; exit 1; }
    docker run --rm weft/busybox ping -c 3 -W 2 $server_ip >/dev/null || { echo 'no container traffic to weft2 after the reboot'; exit 1; }
    echo \"same subnet \$FLANNEL_SUBNET, weft ready at \$((weft_ready / 1000)) ms, dockerd at \$((docker_start / 1000)) ms after boot, ping ok\""
}
check "weft1: reboot: weft then Docker, same subnet, traffic back" reboot_order

# --- What an operator looks at -------------------------------------------------------------------
{
  echo
  echo "=== weft1: systemctl status weft"
  on weft1 'SYSTEMD_COLORS=0 systemctl status weft --no-pager --lines=8 | cut -c1-160' || true
  echo
  echo "=== weft1: journalctl -p warning -u weft"
  on weft1 'journalctl -p warning -u weft --no-pager -o short-monotonic | cut -c1-420 | tail -n 12' || true
  echo
  echo "=== weft1: systemd-analyze security weft (exposure)"
  on weft1 'systemd-analyze security weft --no-pager 2>/dev/null | tail -n 1' || true
} >&2

print_table
[ $failures -eq 0 ]
