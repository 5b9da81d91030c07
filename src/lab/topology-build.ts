/*
 * Creates the lab topology-plan.ts decides (see the picture there). Nothing of the lab lives
 * in the root namespace: veth pairs are created with both ends placed directly into their
 * namespaces. Building is batched (one `ip -batch` per namespace, all veths in one batch) so a
 * lab comes up in about a second plus daemon start.
 */
import { Ipv4Subnet, formatIpv4, parseIpv4 } from "../net/ipv4.js";
import { Ipv6Subnet, formatIpv6, parseIpv6 } from "../net/ipv6.js";
import type { LabState } from "./lab-state.js";
import { configureLinkLines, createBridgeLines, ipBatch, listNamespaces, setSysctls } from "./netns.js";
import { runCommand } from "../process/run-command.js";
import { DOCKER_BRIDGE, allNamespaces, createdNamespaces, hostOf, plainContainers } from "./topology-plan.js";

/**
 * Fails when any of the lab's namespaces exists: another lab of that name is up or left over.
 * Checked before building, so a failed build never tears down someone else's lab.
 */
export async function assertNamespacesFree(state: LabState): Promise<void> {
  const existing = new Set(await listNamespaces());
  const clashing = allNamespaces(state).filter((namespace) => existing.has(namespace));
  if (clashing.length > 0) {
    throw new Error(
      `network namespaces ${clashing.join(", ")} already exist: a lab named "${state.name}" is up or left over; ` +
        `run \`weft lab down --name ${state.name}\` or pick another --name`,
    );
  }
}

/**
 * Creates every namespace, the underlay, and the container veths (still unaddressed:
 * their addresses come from subnet.env, see attachContainers).
 */
export async function buildUnderlay(state: LabState): Promise<void> {
  const namespaces = createdNamespaces(state);
  await ipBatch(undefined, namespaces.map((namespace) => `netns add ${namespace}`), {
    hint: "creating the lab's network namespaces",
  });

  // Before any link exists, so every interface inherits the defaults: hosts route between
  // docker0 and the overlay, and asymmetric overlay paths must not be dropped by rp_filter.
  // With a real dockerd, forwarding starts off as on a fresh host: dockerd turns it on and then
  // sets FORWARD's policy to DROP, the case weft's --iptables-forward-rules exist for.
  const forwarding = {
    "net.ipv4.ip_forward": state.docker ? "0" : "1",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
  };
  await Promise.all(state.hosts.map((host) => setSysctls(host.namespace, forwarding)));
  if (state.underlay.cidrV6) {
    // No duplicate address detection: the lab's addresses are unique by construction, and DAD
    // would leave each new address "tentative" (unusable) for a second or more.
    const noDad = { "net.ipv6.conf.all.accept_dad": "0", "net.ipv6.conf.default.accept_dad": "0" };
    await Promise.all(namespaces.map((namespace) => setSysctls(namespace, noDad)));
    await Promise.all(state.hosts.map((host) => setSysctls(host.namespace, { "net.ipv6.conf.all.forwarding": "1" })));
  }

  const ul = state.underlay;
  const prefixLength = Ipv4Subnet.parse(ul.cidr).prefixLength;
  const prefixLengthV6 = ul.cidrV6 ? Ipv6Subnet.parse(ul.cidrV6).prefixLength : undefined;
  const underlayMembers: { peer: string; namespace: string; address: string; addressV6?: string }[] = [
    { peer: "etcd", namespace: state.etcd.namespace, address: state.etcd.address },
    ...state.hosts.map((host) => ({ peer: host.name, namespace: host.namespace, address: host.underlayAddress, addressV6: host.underlayAddressV6 })),
    ...(state.internet ? [{ peer: "inet", namespace: state.internet.namespace, address: state.internet.address }] : []),
  ];
  const vethLines = [
    ...underlayMembers.map(
      (member) => `link add name eth0 netns ${member.namespace} type veth peer name ${member.peer} netns ${ul.namespace}`,
    ),
    ...plainContainers(state).map((container) => {
      const host = hostOf(state, container.host);
      return `link add name eth0 netns ${container.namespace} type veth peer name ${container.hostVeth} netns ${host.namespace}`;
    }),
  ];
  await ipBatch(undefined, vethLines, { hint: "creating the lab's veth pairs" });

  const batches: Promise<void>[] = [];
  batches.push(
    ipBatch(ul.namespace, [
      "link set lo up",
      ...createBridgeLines(ul.bridge, { mtu: ul.mtu }),
      ...underlayMembers.flatMap((member) => configureLinkLines({ name: member.peer, mtu: ul.mtu, master: ul.bridge })),
    ]),
  );
  for (const member of underlayMembers) {
    batches.push(
      ipBatch(member.namespace, [
        "link set lo up",
        ...configureLinkLines({
          name: "eth0",
          mtu: ul.mtu,
          addresses: [`${member.address}/${prefixLength}`, ...(member.addressV6 ? [`${member.addressV6}/${prefixLengthV6}`] : [])],
        }),
      ]),
    );
  }
  for (const container of plainContainers(state)) batches.push(ipBatch(container.namespace, ["link set lo up"]));
  await Promise.all(batches);
}

/** What a host's subnet.env says, reduced to what docker0 needs. */
export interface DockerBridgeConfig {
  /** FLANNEL_SUBNET: bridge address with the subnet's prefix length, e.g. 10.66.36.1/24; absent in an IPv6-only network. */
  bridgeAddress?: string;
  /** FLANNEL_IPV6_SUBNET of a dual-stack lease: docker0's IPv6 address with prefix, e.g. fd66:0:0:6::1/64. */
  bridgeAddressV6?: string;
  mtu: number;
}

/**
 * Builds docker0 and addresses the host's containers exactly as `dockerd --bip=$FLANNEL_SUBNET
 * --mtu=$FLANNEL_MTU` would: bridge address and MTU from the file, containers at .2, .3 …
 * with the same prefix, MTU on both veth ends, default route via the bridge address.
 * Idempotent: a previous docker0 and container addresses are replaced (the subnet may change).
 * IPv6-only (no FLANNEL_SUBNET): docker0 and the containers get IPv6 only. Docker itself would
 * add its default host-local IPv4 bridge there; the lab leaves it out, since every host's would
 * be the same 172.17.0.0/16 and no IPv4 crosses the overlay.
 */
export async function attachContainers(state: LabState, hostName: string, config: DockerBridgeConfig): Promise<void> {
  const host = hostOf(state, hostName);
  const v4 = config.bridgeAddress ? bridgeV4(config.bridgeAddress, host.subnetFile) : undefined;
  const containers = plainContainers(state).filter((container) => container.host === hostName);
  if (v4 && containers.length + 2 > v4.subnet.size - 1) {
    throw new Error(`${host.subnetFile}: subnet ${v4.subnet} is too small for docker0 and ${containers.length} containers`);
  }

  const v6 = config.bridgeAddressV6 ? bridgeV6(config.bridgeAddressV6, host.subnetFile) : undefined;
  if (!v4 && !v6) throw new Error(`${host.subnetFile}: neither FLANNEL_SUBNET nor FLANNEL_IPV6_SUBNET: nothing to give docker0`);

  await runCommand("ip", ["-n", host.namespace, "link", "del", DOCKER_BRIDGE], { allowFailure: true });
  await ipBatch(host.namespace, [
    ...createBridgeLines(DOCKER_BRIDGE, { mtu: config.mtu, addresses: [config.bridgeAddress, config.bridgeAddressV6].flatMap((address) => (address ? [address] : [])) }),
    ...containers.flatMap((container) => configureLinkLines({ name: container.hostVeth, mtu: config.mtu, master: DOCKER_BRIDGE })),
  ]);
  await Promise.all(
    containers.map((container, index) => {
      const address = v4 ? formatIpv4(v4.subnet.addressAt(index + 2)) : undefined;
      container.address = address;
      container.prefixLength = v4?.subnet.prefixLength;
      container.mtu = config.mtu;
      // As dockerd --fixed-cidr-v6 does: the bridge at ::1, containers from ::2 on.
      const addressV6 = v6 ? formatIpv6(v6.subnet.addressAt(index + 2)) : undefined;
      container.addressV6 = addressV6;
      container.prefixLengthV6 = v6?.subnet.prefixLength;
      return ipBatch(container.namespace, [
        "address flush dev eth0",
        ...configureLinkLines({
          name: "eth0",
          mtu: config.mtu,
          addresses: [...(v4 && address ? [`${address}/${v4.subnet.prefixLength}`] : []), ...(v6 && addressV6 ? [`${addressV6}/${v6.subnet.prefixLength}`] : [])],
        }),
        ...(v4 ? [`route replace default via ${v4.gateway} dev eth0`] : []),
        ...(v6 ? [`route replace ::/0 via ${v6.gateway} dev eth0`] : []),
      ]);
    }),
  );
  host.bridgeAddress = config.bridgeAddress;
  host.bridgeAddressV6 = config.bridgeAddressV6;
  host.subnet = (v4 ?? v6)?.subnet.toString();
  host.mtu = config.mtu;
}

/** docker0's IPv4 address (the gateway) and its subnet, from FLANNEL_SUBNET. */
function bridgeV4(bridgeAddress: string, subnetFile: string): { gateway: string; subnet: Ipv4Subnet } {
  const [addressText, prefixText] = bridgeAddress.split("/");
  const gateway = parseIpv4(addressText ?? "", `${subnetFile} FLANNEL_SUBNET`);
  return { gateway: formatIpv4(gateway), subnet: new Ipv4Subnet(gateway, Number(prefixText)) };
}

/** docker0's IPv6 address (the gateway) and its subnet, from FLANNEL_IPV6_SUBNET. */
function bridgeV6(bridgeAddressV6: string, subnetFile: string): { gateway: string; subnet: Ipv6Subnet } {
  const [addressText, prefixText] = bridgeAddressV6.split("/");
  const gateway = parseIpv6(addressText ?? "", `${subnetFile} FLANNEL_IPV6_SUBNET`);
  return { gateway: formatIpv6(gateway), subnet: new Ipv6Subnet(gateway, Number(prefixText)) };
}
