/*
 * Docker's own overlay across a lab's dockerds (`weft bench --paths docker-overlay`): swarm
 * mode, an attachable overlay network, one container per host on it.
 *
 *   <lab>-h1: dockerd, swarm manager            <lab>-h2: dockerd, swarm worker
 *     listens 2377/tcp (cluster), 7946/tcp+udp (gossip), 4789/udp (vxlan data) on eth0 (underlay)
 *     overlay "weftbench": a vxlan device in a sandbox namespace dockerd keeps under its
 *     exec-root/netns (removed with it); containers h1c9, h2c9 on it, their namespaces attached
 *     as <lab>-h1c9, <lab>-h2c9 (the lab's name pattern, so `lab down` removes leftovers too).
 *
 * What swarm needs here: nothing beyond the lab's dockerd. Each host namespace has its own port
 * space, so the three swarm ports need no mapping; the kernel's vxlan driver is built in (or
 * `modprobe vxlan`); IPVS (ip_vs) is absent on this kernel, which only breaks service VIPs and the
 * routing mesh (dockerd logs "error reading the kernel parameter net.ipv4.vs.…"): containers
 * attached to the network talk to each other by address without it. The ingress network is created
 * by `swarm init` and left unused.
 */
import { CONTAINER_HTTP_PORT, containerScript } from "./docker-plan.js";
import type { LabHost } from "./lab-handle.js";
import { runCommand } from "../process/run-command.js";
import { waitForListener } from "./readiness.js";

export const SWARM_OVERLAY_NETWORK = "weftbench";
/** Outside the lab's 10.66.0.0/16 and the underlay: nothing else routes it. */
export const SWARM_OVERLAY_SUBNET = "10.77.0.0/24";

export interface OverlayContainer {
  host: string;
  name: string;
  namespace: string;
  address: string;
  mtu?: number;
}

function underlayIp(host: LabHost): string {
  return host.underlayAddress.split("/")[0] as string;
}

/** `docker swarm init` on the first host, `join` on the others, all advertising their underlay address. */
export async function formSwarm(hosts: readonly LabHost[]): Promise<void> {
  const [manager, ...workers] = hosts;
  if (!manager) throw new Error("a swarm needs at least one lab host");
  const managerIp = underlayIp(manager);
  await manager.docker(["swarm", "init", `--advertise-addr=${managerIp}`, `--listen-addr=${managerIp}:2377`], {
    hint: `swarm init on ${manager.name} (ports 2377, 7946, 4789 on ${managerIp})`,
  });
  const token = (await manager.docker(["swarm", "join-token", "--quiet", "worker"])).stdout.trim();
  for (const worker of workers) {
    const ip = underlayIp(worker);
    await worker.docker(["swarm", "join", `--token=${token}`, `--advertise-addr=${ip}`, `--listen-addr=${ip}:2377`, `${managerIp}:2377`], {
      hint: `swarm join of ${worker.name} to ${managerIp}:2377`,
    });
  }
}

/** The attachable overlay network, created on the manager (workers see it once a container joins). */
export async function createOverlayNetwork(manager: LabHost, mtu?: number): Promise<void> {
  await manager.docker([
    "network", "create", "--driver=overlay", "--attachable", `--subnet=${SWARM_OVERLAY_SUBNET}`,
    ...(mtu === undefined ? [] : ["--opt", `com.docker.network.driver.mtu=${mtu}`]),
    SWARM_OVERLAY_NETWORK,
  ], { hint: `creating the overlay network on ${manager.name}` });
}

/** Runs one container on the overlay on `host` and names its network namespace `<lab>-<host>c9`. */
export async function runOverlayContainer(labName: string, host: LabHost, image: string): Promise<OverlayContainer> {
  const name = `${host.name}c9`;
  const namespace = `${labName}-${name}`;
  await host.docker(["rm", "--force", name], { allowFailure: true });
  const id = (await host.docker(["run", "--detach", `--name=${name}`, `--hostname=${name}`, `--network=${SWARM_OVERLAY_NETWORK}`, image, "sh", "-c", containerScript(name)], {
    hint: `running ${name} on the overlay network of ${host.name}`,
    timeoutMs: 90_000,
  })).stdout.trim();
  const format = `{{.State.Pid}} {{(index .NetworkSettings.Networks "${SWARM_OVERLAY_NETWORK}").IPAddress}}`;
  const [pidText, address] = (await host.docker(["inspect", "--format", format, id])).stdout.trim().split(" ");
  if (!pidText || !address) throw new Error(`${host.name}: docker inspect ${name} gave no PID or overlay address`);
  await runCommand("ip", ["netns", "delete", namespace], { allowFailure: true });
  await runCommand("ip", ["netns", "attach", namespace, pidText], { hint: `naming the network namespace of ${name}` });
  const links = JSON.parse((await runCommand("ip", ["-n", namespace, "-j", "link", "show"])).stdout) as { ifname: string; mtu: number }[];
  await waitForListener(namespace, "tcp", CONTAINER_HTTP_PORT, { timeoutMs: 10_000 });
  return { host: host.name, name, namespace, address, mtu: links.find((link) => link.ifname === "eth0")?.mtu };
}

/** Removes the containers and their namespace names; dockerd's own stop removes the rest. */
export async function removeOverlayContainers(hosts: readonly LabHost[], containers: readonly OverlayContainer[]): Promise<void> {
  for (const container of containers) {
    const host = hosts.find((candidate) => candidate.name === container.host);
    await host?.docker(["rm", "--force", container.name], { allowFailure: true, timeoutMs: 30_000 });
    await runCommand("ip", ["netns", "delete", container.namespace], { allowFailure: true });
  }
}
