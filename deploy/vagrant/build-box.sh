#!/usr/bin/env bash
# Builds the Debian 12 libvirt box the Vagrant lab boots when no box can be downloaded
# (`deploy/vagrant/build-box.sh`, as root). Cached: rebuilt only when this script changes.
#
#   mmdebstrap bookworm ──► tar ──► ext4 on partition 1 of an 8 GiB sparse disk ──► EXTLINUX (BIOS) in the MBR
#        (systemd, ssh,          (mounted through a loop device;                 │
#         Docker, etcd, …)        the packages come from the Debian mirror)      ▼
#                                                           box.img (qcow2) + metadata.json
#                                                           + Vagrantfile ──► weft-bookworm64.box
#
# What is in it, and why:
#   systemd, udev, dbus, openssh-server, sudo, ifupdown + isc-dhcp-client   what Vagrant needs to
#       log in as `vagrant` (Vagrant's published insecure key; `vagrant up` replaces it with a new
#       key per VM) and to configure the private network (Debian guests: ifupdown);
#   docker.io, apparmor, etcd-server, etcd-client, busybox-static   the lab's roles: Docker on weft hosts
#       (Debian's kernel enables AppArmor, and dockerd then needs apparmor_parser for its profile)
#       (busybox-static becomes a local image with `docker import`: no registry is reachable),
#       etcd on the etcd VM;
#   iproute2, nftables, iptables, iputils-ping, procps, libstdc++6   weft's runtime prerequisites
#       (the .deb brings its own Node), so installing weft's .deb needs no network;
#   wireguard-tools, wireguard-go   wg(8), with which the wireguard backend configures the
#       kernel's device (BACKEND=wireguard: Debian's kernel has the module), and the userspace
#       WireGuard the smoke switches to after it.
# Per-VM identity is not in the image: /etc/machine-id is empty (systemd makes one at first boot)
# and the ssh host key (ed25519 only: an RSA key takes minutes to make under software emulation)
# is generated at first boot, so clones do not share them. Docker, containerd and etcd are
# installed but disabled (the Vagrantfile enables each where it belongs: a VM boots faster
# without them), and so are apt's and the file systems' periodic timers (nothing in a lab VM
# should start work of its own in the middle of a measurement). weft's state
# dir (/var/lib/weft, which holds the VtepMAC) is created by weft in each VM.
# The kernel command line names the interfaces eth0 (Vagrant's management network) and eth1, …
# (net.ifnames=0), sends the console to the serial port (`virsh console` works), and turns the
# CPU vulnerability mitigations off (mitigations=off): a lab VM runs only its own code, and under
# software emulation page-table isolation and retpolines cost more than anything else at boot.
#
#   deploy/vagrant/build-box.sh [--force]
# Environment: WEFT_VAGRANT_CACHE (default /var/cache/weft-vagrant: the box and its hash),
#              WEFT_DEBIAN_MIRROR (default http://deb.debian.org/debian).
# Prints the path of the box on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${WEFT_VAGRANT_CACHE:-/var/cache/weft-vagrant}"
mirror="${WEFT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
box="$cache/weft-bookworm64.box"
say() { echo "build-box: $*" >&2; }
die() { say "FAILED: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (loop devices, mount, chroot)"
# The disk is mounted in a mount namespace of this script's own. Mounted in the machine's, every
# mount namespace created meanwhile (a container, a test's sandbox) would get a copy of the mount
# that our umount does not remove: the file system then stays mounted there, and what is still
# cached never reaches the disk (seen: a boot-loader config missing from the box).
if [ -z "${WEFT_BOX_PRIVATE_MOUNTS:-}" ]; then
  WEFT_BOX_PRIVATE_MOUNTS=1 exec unshare --mount --propagation private -- "$0" "$@"
fi
recipe_hash="$(sha256sum "$0" | cut -c1-16)"
if [ "${1:-}" != "--force" ] && [ -f "$box" ] && [ "$(cat "$box.recipe" 2>/dev/null)" = "$recipe_hash" ]; then
  say "cached: $box (recipe $recipe_hash)"
  echo "$box"
  exit 0
fi

need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v extlinux >/dev/null || need+=(extlinux)
[ -f /usr/lib/syslinux/mbr/mbr.bin ] || need+=(syslinux-common)
command -v qemu-img >/dev/null || need+=(qemu-utils)
command -v sfdisk >/dev/null || need+=(fdisk)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
vagrant_pub=""
for candidate in /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub /opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub; do
  [ -f "$candidate" ] && vagrant_pub="$candidate" && break
done
[ -n "$vagrant_pub" ] || die "Vagrant's insecure public key (keys/vagrant.pub) not found: install vagrant first"

mkdir -p "$cache"
work="$(mktemp -d /var/tmp/weft-box.XXXXXX)"
root="$work/root"
loop=""
# Unmounts a directory and everything mounted below it, deepest first.
unmount_all() {
  local target
  findmnt -R -n -l -o TARGET "$1" | tac | while read -r target; do umount "$target"; done
  ! mountpoint -q "$1" || die "$1 is still mounted"
}
cleanup() {
  set +e
  mountpoint -q "$root" && unmount_all "$root"
  [ -n "$loop" ] && losetup -d "$loop"
  rm -rf "$work"
}
trap cleanup EXIT

# 1. Debian 12 as a tarball (mmdebstrap works in a directory of its own: nothing it starts
#    can hold the disk). The disk is found by its label: the same tarball fits every disk.
packages=(systemd systemd-sysv udev dbus kmod linux-image-amd64 openssh-server sudo ifupdown
  isc-dhcp-client netbase iproute2 nftables iptables iputils-ping procps less ca-certificates
  libstdc++6 docker.io apparmor etcd-server etcd-client busybox-static wireguard-tools wireguard-go)
say "mmdebstrap bookworm from $mirror (a few minutes)"
mmdebstrap --quiet --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" \
  --customize-hook='echo "LABEL=weft-root / ext4 errors=remount-ro 0 1" > "$1/etc/fstab"' \
  --customize-hook='chroot "$1" useradd --create-home --shell /bin/bash --groups sudo,docker vagrant' \
  --customize-hook='echo "vagrant ALL=(ALL) NOPASSWD: ALL" > "$1/etc/sudoers.d/vagrant" && chmod 0440 "$1/etc/sudoers.d/vagrant"' \
  --customize-hook="install -d -m 0700 -o 1000 -g 1000 \"\$1/home/vagrant/.ssh\" && install -m 0600 -o 1000 -g 1000 '$vagrant_pub' \"\$1/home/vagrant/.ssh/authorized_keys\"" \
  --customize-hook='printf "auto lo\niface lo inet loopback\n\nallow-hotplug eth0\niface eth0 inet dhcp\n" > "$1/etc/network/interfaces"' \
  --customize-hook='printf "UseDNS no\n" > "$1/etc/ssh/sshd_config.d/vagrant.conf"' \
  --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
  --customize-hook='printf "HostKey /etc/ssh/ssh_host_ed25519_key\n" > "$1/etc/ssh/sshd_config.d/host-key.conf"' \
  --customize-hook='mkdir -p "$1/etc/systemd/system/ssh.service.d" && printf "[Service]\nExecStartPre=\nExecStartPre=/bin/sh -c \"test -f /etc/ssh/ssh_host_ed25519_key || ssh-keygen -q -t ed25519 -N \047\047 -f /etc/ssh/ssh_host_ed25519_key\"\nExecStartPre=/usr/sbin/sshd -t\n" > "$1/etc/systemd/system/ssh.service.d/host-keys.conf"' \
  --customize-hook='chroot "$1" systemctl disable etcd.service docker.service docker.socket containerd.service' \
  --customize-hook='chroot "$1" systemctl disable apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer 2>/dev/null || true' \
  --customize-hook='echo weft-box > "$1/etc/hostname"' \
  --customize-hook=': > "$1/etc/machine-id"; rm -f "$1/var/lib/dbus/machine-id"' \
  bookworm "$work/rootfs.tar" "$mirror"

# 2. The disk: one bootable partition from 1 MiB to the end (the MBR's boot code chains to the
#    partition marked bootable), seen through a loop device with partition scanning.
raw="$work/disk.raw"
truncate -s 8G "$raw"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk --quiet "$raw"
loop="$(losetup --find --show --partscan "$raw")"
# Where the kernel's own partition scan is not allowed (as in some containers), partx adds it.
for _ in $(seq 20); do [ -b "${loop}p1" ] && break; sleep 0.1; done
[ -b "${loop}p1" ] || partx --add "$loop" 2>/dev/null || true
for _ in $(seq 50); do [ -b "${loop}p1" ] && break; sleep 0.1; done
if [ ! -b "${loop}p1" ] && [ -r "/sys/block/${loop#/dev/}/${loop#/dev/}p1/dev" ]; then
  IFS=: read -r major minor < "/sys/block/${loop#/dev/}/${loop#/dev/}p1/dev"
  mknod "${loop}p1" b "$major" "$minor"
fi
[ -b "${loop}p1" ] || die "${loop}p1 did not appear (partition scanning of loop devices not possible here)"
# Without the 64bit feature (mke2fs's default): EXTLINUX 6.04 reads ext4, but not reliably with it.
mkfs.ext4 -q -O ^64bit -L weft-root "${loop}p1"
mkdir -p "$root"
mount "${loop}p1" "$root"
tar -xpf "$work/rootfs.tar" -C "$root" --numeric-owner --xattrs --xattrs-include='*'
rm "$work/rootfs.tar"

# 3. The boot loader: EXTLINUX for BIOS, from this machine's extlinux and syslinux-common (the
#    image has no boot-loader package, so nothing in it rewrites the MBR): syslinux's MBR code
#    boots the bootable partition, whose boot sector loads /boot/extlinux. The menu boots
#    /vmlinuz and /initrd.img, the symlinks Debian's kernel packages keep pointing at the newest
#    kernel, so a kernel upgrade inside a VM needs no boot-loader update. Not GRUB (as until
#    2026-12-02): grub-install and grub-bios-setup 2.06 probe the partition's disk, which fails on
#    loop partitions of newer kernels ("cannot find a GRUB drive for /dev/loop0p1", "cannot get
#    disk geometry"); EXTLINUX installs into the mounted file system and needs no probing.
kernel="$(readlink "$root/vmlinuz" || true)"
[ -n "$kernel" ] && [ -f "$root/$kernel" ] && [ -f "$root/$(readlink "$root/initrd.img")" ] || die "no /vmlinuz and /initrd.img in the image"
mkdir -p "$root/boot/extlinux"
cat > "$root/boot/extlinux/extlinux.conf" <<'EOF'
SERIAL 0 115200
DEFAULT weft
TIMEOUT 0
PROMPT 0
LABEL weft
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND root=LABEL=weft-root ro net.ifnames=0 biosdevname=0 console=tty0 console=ttyS0,115200 mitigations=off
EOF
extlinux_out="$(extlinux --install "$root/boot/extlinux" 2>&1)" || die "extlinux --install on ${loop}p1 failed: $extlinux_out"
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$loop" bs=440 count=1 conv=notrunc status=none || die "writing syslinux's MBR to $loop failed"
fstrim "$root" 2>/dev/null || true   # free blocks become holes in the sparse file: a smaller box
size_mb="$(du -sm "$root" | cut -f1)"
sync
unmount_all "$root"
# The file system must be unmounted everywhere, or what is still cached never reaches the disk.
! grep -qs " - [^ ]* ${loop}p1 " /proc/[0-9]*/mountinfo || die "${loop}p1 is still mounted in another mount namespace"
blockdev --flushbufs "$loop" "${loop}p1"
mount -o ro "${loop}p1" "$root"
[ -s "$root/boot/extlinux/extlinux.conf" ] && [ -f "$root/boot/extlinux/ldlinux.sys" ] && [ -s "$root/etc/fstab" ] || die "the boot loader's files are not on the finished disk"
umount "$root"
losetup -d "$loop"; loop=""

# 4. The box: a qcow2 image, the provider's metadata and a Vagrantfile with its defaults.
qemu-img convert -O qcow2 "$raw" "$work/box.img"
printf '{"provider":"libvirt","format":"qcow2","virtual_size":8}\n' > "$work/metadata.json"
cat > "$work/Vagrantfile" <<'EOF'
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.driver = "kvm"
  end
end
EOF
tar -cf "$box.partial" -C "$work" metadata.json Vagrantfile box.img
mv "$box.partial" "$box"
echo "$recipe_hash" > "$box.recipe"
say "built $box ($(du -h "$box" | cut -f1); root filesystem ${size_mb} MiB, kernel ${kernel#boot/})"
echo "$box"
