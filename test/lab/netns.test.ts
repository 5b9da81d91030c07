/*
 *   ns <p>a                 ns <p>b
 *   +-----------+           +-----------+
 *   | va        |-----------| vb        |
 *   | 10.99.0.1 |   veth    | 10.99.0.2 |
 *   +-----------+           +-----------+
 *   plus a bridge br0 in <p>a (no ports) to check createBridge.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createBridge,
  createNamespace,
  createVethPair,
  deleteNamespace,
  execInNamespace,
  ipBatch,
  listLinks,
  listNamespaces,
  namespacePids,
  uniquePrefix,
  assertInterfaceName,
} from "../../src/lab/netns.js";
import { CommandFailedError, CommandMissingError } from "../../src/process/command-errors.js";
import { isAlive } from "../../src/process/pids.js";
import { spawnDetachedInNamespace } from "../../src/process/detached.js";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

const prefix = uniquePrefix();
const nsA = `${prefix}a`;
const nsB = `${prefix}b`;
let dir = "";

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "weft-netns-test-"));
  await createNamespace(nsA);
  await createNamespace(nsB);
});

afterAll(async () => {
  await deleteNamespace(nsA);
  await deleteNamespace(nsB);
  await rm(dir, { recursive: true, force: true });
});

describe("netns primitives", () => {
  it("creates namespaces, a veth pair with addresses, and ping works across it", async () => {
    await createVethPair(
      { name: "va", namespace: nsA, addresses: ["10.99.0.1/30"], mtu: 1400 },
      { name: "vb", namespace: nsB, addresses: ["10.99.0.2/30"], mtu: 1400 },
    );
    const links = await listLinks(nsA);
    const va = links.find((link) => link.ifname === "va");
    expect(va?.mtu).toBe(1400);
    expect(va?.addr_info?.some((a) => a.local === "10.99.0.1" && a.prefixlen === 30)).toBe(true);
    const ping = await execInNamespace(nsA, "ping", ["-c", "1", "-W", "2", "10.99.0.2"]);
    expect(ping.stdout).toMatch(/1 received/);
    expect(await listNamespaces()).toEqual(expect.arrayContaining([nsA, nsB]));
  });

  it("creates a bridge, and a failing batch names the failing line", async () => {
    await createBridge(nsA, "br0", { addresses: ["10.98.0.1/24"], mtu: 1450 });
    expect((await listLinks(nsA)).find((link) => link.ifname === "br0")?.mtu).toBe(1450);
    const failure = ipBatch(nsA, ["link set dev lo up", "link set dev nosuchdev up"]);
    await expect(failure).rejects.toBeInstanceOf(CommandFailedError);
    await expect(failure).rejects.toThrow(/nosuchdev/);
  });

  it("runs a command in a namespace, and names a program missing there with CommandMissingError", async () => {
    const failed = execInNamespace(nsA, "sh", ["-c", "echo nope >&2; exit 2"]);
    await expect(failed).rejects.toMatchObject({ netns: nsA, exitCode: 2, stderr: "nope\n" });
    await expect(failed).rejects.toThrow(`\`sh -c echo nope >&2; exit 2\` failed in namespace "${nsA}" (exit code 2): nope`);
    const missing = execInNamespace(nsA, "weft-no-such-program", [], { allowFailure: true });
    await expect(missing).rejects.toBeInstanceOf(CommandMissingError);
    await expect(missing).rejects.toThrow('"weft-no-such-program" is not installed or not on PATH');
  });

  it("rejects interface names longer than 15 characters with an actionable message", () => {
    expect(() => assertInterfaceName("a-very-long-interface")).toThrow(/1\.\.15 characters/);
  });

  it("spawns a detached process in a namespace and deleteNamespace kills it by PID", async () => {
    const pid = spawnDetachedInNamespace(nsB, "sleep", ["300"], join(dir, "sleep.log"));
    // Give ip netns exec time to switch namespace before asking which PIDs live there.
    for (let i = 0; i < 50 && !(await namespacePids(nsB)).includes(pid); i++) await new Promise((r) => setTimeout(r, 20));
    expect(await namespacePids(nsB)).toContain(pid);
    await deleteNamespace(nsB, 500);
    expect(isAlive(pid)).toBe(false);
    expect(await listNamespaces()).not.toContain(nsB);
  });
});
