/*
 * deploy/weft.service's sandbox, emulated without systemd (PID 1 here is not systemd): a vxlan
 * daemon with --ip-masq and the forward rules runs as the unit would run it and gets ready.
 *
 *            <lab>-ul  bridge ul0, 192.168.77.0/24
 *      +-----------+
 *   <lab>-etcd  <lab>-h1: ip netns exec → unshare -m (a private mount namespace, as systemd makes):
 *   etcd :2379    every mount read-only except the subnet file's and state dir's folders
 *                 (ProtectSystem=strict + RuntimeDirectory=/StateDirectory=), /proc/sys and /sys
 *                 read-only (ProtectKernelTunables=), empty /tmp (PrivateTmp=), /home and /root
 *                 hidden (ProtectHome=) → setpriv: bounding, inheritable and ambient sets
 *                 CAP_NET_ADMIN CAP_NET_RAW only, no_new_privs (NoNewPrivileges=) → weft run
 *
 * Not emulated (need a booted systemd; see the report in docs/host-integration.md "systemd"):
 * RestrictAddressFamilies=, DevicePolicy=, ProtectKernelModules=' seccomp part, RestrictNamespaces=.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { daemonArgs, waitDaemonReady, weftCliPath } from "../../src/lab/lab-daemon.js";
import { execInNamespace } from "../../src/lab/netns.js";
import { terminatePids } from "../../src/process/pids.js";
import { commandLineIn } from "../../src/process/run-command.js";
import { useLab } from "../support/lab.js";

/**
 * $1, $2: the writable folders; $3: the checkout weft runs from; the rest: the command. Prints
 * what it could not make read-only. An installed weft lives in /usr/lib/weft; a checkout under
 * /tmp, /home or /root (a CI clone in a mktemp dir) is put back, read-only, after those are
 * masked, through an fd held from before (mount must not canonicalize the /proc/self/fd path, or
 * it binds the new empty directory).
 */
const SANDBOX = String.raw`
set -eu
rw1=$1; rw2=$2; code=$3; shift 3
exec 9<"$code"
for p in "$rw1" "$rw2"; do mount --bind "$p" "$p"; done
for mp in $(awk '{print $5}' /proc/self/mountinfo | sort -u); do
  case "$mp" in "$rw1"|"$rw2"|/proc|/proc/*|/dev|/dev/*|/sys|/sys/*) continue ;; esac
  mount -o remount,bind,ro "$mp" 2>/dev/null || echo "sandbox: $mp stays writable" >&2
done
mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys
mount -o remount,bind,ro /sys
mount -t tmpfs -o mode=1777 tmpfs /tmp
for home in /home /root; do [ -d "$home" ] && mount -t tmpfs -o ro,mode=0755 tmpfs "$home"; done
case "$code" in
  /tmp/*|/home/*|/root/*)
    top=/$(echo "$code" | cut -d/ -f2)
    [ "$top" = /tmp ] || mount -o remount,rw "$top"
    mkdir -p "$code" && mount --no-canonicalize --bind /proc/self/fd/9 "$code" && mount -o remount,bind,ro "$code"
    [ "$top" = /tmp ] || mount -o remount,ro "$top"
    ;;
esac
exec 9<&-
exec setpriv --no-new-privs --bounding-set=-all,+net_admin,+net_raw --inh-caps=-all,+net_admin,+net_raw --ambient-caps=-all,+net_admin,+net_raw "$@"
`;

/** The checkout dist/cli.js belongs to. */
const CHECKOUT = dirname(dirname(weftCliPath()));

const lab = useLab("wsb", { hosts: 1, containersPerHost: 0, backend: "vxlan", daemons: "none", ipMasq: true });
let daemon: ChildProcess | undefined;

beforeAll(async () => {
  await lab().etcdctl(["put", "/coreos.com/network/config", JSON.stringify({ Network: "10.66.0.0/16", Backend: { Type: "vxlan" } })]);
});
afterAll(async () => {
  if (daemon?.pid !== undefined) await terminatePids([daemon.pid], 5000);
});

describe("weft under the unit's sandbox (emulated)", () => {
  it("a vxlan daemon with --ip-masq gets ready with only CAP_NET_ADMIN and CAP_NET_RAW and a read-only system, and stops with 0", async () => {
    const host = lab().host("h1").state;
    const writable = [dirname(host.subnetFile), host.stateDir];
    if (writable[0] === writable[1]) throw new Error("the test needs two distinct writable folders");
    // systemd creates RuntimeDirectory= and StateDirectory= before it starts weft.
    for (const folder of writable) await mkdir(folder, { recursive: true });
    const fd = openSync(host.logFile, "a");
    host.daemonLogOffset = (await readFile(host.logFile, "utf8").catch(() => "")).length;
    const [file, argv] = commandLineIn(host.namespace, "unshare", [
      "-m", "--propagation", "private", "sh", "-c", SANDBOX, "sandbox", ...writable, CHECKOUT, process.execPath, weftCliPath(), ...daemonArgs(lab().state, host),
    ]);
    daemon = spawn(file, argv, { stdio: ["ignore", fd, fd] });
    closeSync(fd);
    const exited = new Promise<number | null>((resolve) => daemon!.once("exit", (code) => resolve(code)));
    // unshare and sh exec in place: the PID is weft's once it runs.
    host.daemonPid = daemon.pid;
    await waitDaemonReady(host, 30_000);
    // /readyz turns ready with the backend; "weft is ready" follows the peer listing and first reconcile.
    const logSinceStart = async () => (await readFile(host.logFile, "utf8")).slice(host.daemonLogOffset);
    await expect.poll(logSinceStart, { timeout: 10_000 }).toMatch(/"msg":"weft is ready"/);

    const log = await logSinceStart();
    expect(log).not.toMatch(/sandbox: .* stays writable/);
    expect(log).not.toMatch(/"level":50/);
    const status = await readFile(`/proc/${daemon.pid}/status`, "utf8");
    expect(status).toMatch(/^CapEff:\s*0000000000003000$/m); // CAP_NET_ADMIN (12) | CAP_NET_RAW (13)
    expect(status).toMatch(/^NoNewPrivs:\s*1$/m);
    expect((await execInNamespace(host.namespace, "ip", ["-d", "link", "show", "flannel.1"])).stdout).toContain("vxlan id 1");
    expect((await execInNamespace(host.namespace, "nft", ["list", "table", "ip", "weft"])).stdout).toContain("masquerade");

    process.kill(daemon.pid!, "SIGTERM");
    expect(await exited).toBe(0);
    daemon = undefined;
    host.daemonPid = undefined;
  });
});
