import { afterAll, beforeAll } from "vitest";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { buildLab, teardownLab, type Lab, type LabOptions } from "../../src/lab/lab.js";
import { execInNamespace, listNamespaces, uniquePrefix } from "../../src/lab/netns.js";
import { inHostRunDir, weftCliPath } from "../../src/lab/lab-daemon.js";
import type { CommandResult } from "../../src/process/run-command.js";

/** What a test asks of its lab; the fixture picks the name and the directory. */
export type LabSetup = Omit<LabOptions, "name" | "labDir">;

/** The built lab, and where it lives (known before it is built: device names may derive from it). */
export interface LabFixture {
  (): Lab;
  readonly name: string;
  readonly labDir: string;
}

/**
 * One lab for the describe block (or file) it is called in, as useEtcd is one etcd: built before
 * its tests, torn down after them and its directory removed, also when a test or the build failed;
 * a namespace of the lab still there after the teardown fails the file (a leak is a defect).
 * `namePrefix` (a few letters) starts every namespace and interface of the run, so runs in
 * parallel and leftovers of a crashed run never collide.
 */
export function useLab(namePrefix: string, setup: LabSetup, buildTimeoutMs = 180_000): LabFixture {
  const name = uniquePrefix(namePrefix).slice(0, -1);
  const labDir = join(tmpdir(), `weft-lab-${name}`);
  let built: Lab | undefined;
  beforeAll(async () => {
    // The lab's daemons are dist/cli.js: a missing build would otherwise surface as a daemon that never got ready.
    if (!existsSync(weftCliPath())) throw new Error(`${weftCliPath()} is missing: run \`npm run build:ts\` first`);
    built = await buildLab({ ...setup, name, labDir });
  }, buildTimeoutMs);
  afterAll(async () => {
    // By name, not through `built`: a build that timed out has no handle but may have made things.
    await teardownLab({ name, labDir });
    await rm(labDir, { recursive: true, force: true });
    const left = (await listNamespaces()).filter((namespace) => namespace.startsWith(`${name}-`));
    if (left.length > 0) throw new Error(`lab ${name}: namespaces left after its teardown: ${left.join(", ")}`);
  });
  const lab = (): Lab => {
    if (!built) throw new Error(`useLab(): lab ${name} is not built (use it inside tests, not at import time)`);
    return built;
  };
  // defineProperties, not Object.assign: a function's own `name` is read-only (but configurable).
  return Object.defineProperties(lab, { name: { value: name }, labDir: { value: labDir } }) as LabFixture;
}

/**
 * `weft doctor` on a lab host as its daemon runs there: the host's etcd, --iface, subnet file,
 * state dir, key file and /run/wireguard (where wg finds a wireguard-go socket); `extra` last.
 * `iface` replaces the daemon's --iface (repeatable, first match wins: it cannot be added to).
 */
export async function doctorOn(lab: Lab, host: string, extra: readonly string[] = [], iface = lab.host(host).state.underlayDevice): Promise<CommandResult> {
  const state = lab.host(host).state;
  const [program, argv] = await inHostRunDir(state, process.execPath, [
    weftCliPath(), "doctor", `--etcd-endpoints=${lab.etcdEndpoint}`, `--iface=${iface}`,
    `--subnet-file=${state.subnetFile}`, `--state-dir=${state.stateDir}`, ...extra,
  ]);
  return execInNamespace(state.namespace, program, argv, { allowFailure: true, env: { ...process.env, WIREGUARD_KEY_FILE: join(state.stateDir, "wgkey") } });
}
