import { Ipv4Subnet, formatIpv4, parseIpv4, type Ipv4Number } from "../net/ipv4.js";
import { Ipv6Subnet, formatIpv6, parseIpv6, type Ipv6Number } from "../net/ipv6.js";
import { isJsonObject, readBoolean, readField, readInteger, readString, type JsonObject } from "../codec/json-fields.js";
import { errorMessage } from "../errors/error-message.js";

/**
 * The cluster network, from `<prefix>/config` (flannel-compat §1.2), validated and with defaults applied:
 * IPv4 (the default), dual stack (EnableIPv6) or IPv6 only (EnableIPv4: false, EnableIPv6: true).
 */
export interface NetworkConfig {
  /** EnableIPv4 as written (default true); always `ipv4 !== undefined`. */
  enableIPv4: boolean;
  /** EnableIPv6 as written (default false); always `ipv6 !== undefined`. */
  enableIPv6: boolean;
  /** The IPv4 half; absent in an IPv6-only network. */
  ipv4?: Ipv4NetworkConfig;
  /** The IPv6 half; present in a dual-stack or IPv6-only network. */
  ipv6?: Ipv6NetworkConfig;
  enableNFTables: boolean;
  backend: BackendConfig;
  /**
   * Fields given but unused: the IPv4 ones (Network, SubnetLen, SubnetMin, SubnetMax) in an
   * IPv6-only network, which flanneld also parses and then ignores. For a note to the user.
   */
  ignoredFields: readonly string[];
}

/** The IPv4 half of a network (EnableIPv4, the default), with flannel's defaults applied. */
export interface Ipv4NetworkConfig {
  network: Ipv4Subnet;
  subnetLen: number;
  /** Start address of the first subnet that may be leased. */
  subnetMin: Ipv4Number;
  /** Start address of the last subnet that may be leased. */
  subnetMax: Ipv4Number;
}

/** The IPv6 half of a dual-stack or IPv6-only network (EnableIPv6), with flannel's defaults applied. */
export interface Ipv6NetworkConfig {
  network: Ipv6Subnet;
  subnetLen: number;
  /** Start address of the first IPv6 subnet that may be leased (default: the second one). */
  subnetMin: Ipv6Number;
  /** Start address of the last IPv6 subnet that may be leased (default: the last one). */
  subnetMax: Ipv6Number;
}

export interface BackendConfig {
  type: string;
  /** The whole Backend object as written (Type included); backends read their own fields. */
  options: JsonObject;
}

/** The network a config is known by in messages: its Network, or its IPv6Network when IPv6-only. */
export function primaryNetwork(config: NetworkConfig): Ipv4Subnet | Ipv6Subnet {
  const network = config.ipv4?.network ?? config.ipv6?.network;
  // networkConfigFromJson refuses a config with neither family.
  if (!network) throw new Error("the network config enables neither IPv4 nor IPv6");
  return network;
}

/** "Network 10.66.0.0/16, /24 subnets", and for an IPv6-only network "IPv6Network fd66::/48, /64 subnets": for CLI output. */
export function describeNetworkConfig(config: NetworkConfig): string {
  if (config.ipv4) return `Network ${config.ipv4.network}, /${config.ipv4.subnetLen} subnets`;
  return `IPv6Network ${primaryNetwork(config)}, /${config.ipv6?.subnetLen ?? "-"} subnets (IPv6 only)`;
}

/**
 * The note on a config's ignored IPv4 fields ("Network, SubnetLen given but unused: …"), the same
 * for `weft config set` and the daemon's start; undefined when nothing is ignored.
 */
export function ignoredFieldsNote(config: Pick<NetworkConfig, "ignoredFields">): string | undefined {
  if (config.ignoredFields.length === 0) return undefined;
  return `${config.ignoredFields.join(", ")} given but unused: the network is IPv6-only (EnableIPv4: false)`;
}

/** flanneld's code default when Backend is absent (its docs claim vxlan; the code says udp). */
export const DEFAULT_BACKEND_TYPE = "udp";

/** Parses the JSON text stored at `<prefix>/config`. Errors name the field and the value. */
export function parseNetworkConfig(text: string): NetworkConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new Error(`network config is not valid JSON: ${errorMessage(error)}`);
  }
  if (!isJsonObject(raw)) throw new Error("network config must be a JSON object");
  return networkConfigFromJson(raw);
}

export function networkConfigFromJson(raw: JsonObject): NetworkConfig {
  const enableIPv4 = readBoolean(raw, "EnableIPv4", "EnableIPv4") ?? true;
  const enableIPv6 = readBoolean(raw, "EnableIPv6", "EnableIPv6") ?? false;
  if (!enableIPv4 && !enableIPv6) {
    // flanneld: "none defined stack".
    throw new Error(
      "EnableIPv4: false, and EnableIPv6 is not true: the network would lease no subnets; for an IPv6-only network " +
        'set "EnableIPv6": true and an "IPv6Network" such as "fd66::/48", or drop "EnableIPv4": false',
    );
  }
  const ipv4 = enableIPv4 ? parseIpv4Network(raw) : undefined;
  const ignoredFields = enableIPv4 ? [] : checkUnusedIpv4Fields(raw);
  const ipv6 = enableIPv6 ? parseIpv6Network(raw) : undefined;
  const enableNFTables = readBoolean(raw, "EnableNFTables", "EnableNFTables") ?? false;
  return { enableIPv4, enableIPv6, ipv4, ipv6, enableNFTables, backend: parseBackend(raw), ignoredFields };
}

function parseIpv4Network(raw: JsonObject): Ipv4NetworkConfig {
  const networkText = readString(raw, "Network", "Network");
  if (networkText === undefined) {
    throw new Error('Network: missing; set it to an IPv4 CIDR such as "10.66.0.0/16" (or, for an IPv6-only network, "EnableIPv4": false)');
  }
  const network = Ipv4Subnet.parse(networkText, "Network");
  if (network.prefixLength > 28) {
    throw new Error(`Network: ${network} is too small: it must hold at least four subnets (prefix /28 or shorter)`);
  }
  const subnetLen = parseSubnetLen(raw, network);
  const subnetSize = 2 ** (32 - subnetLen);
  const subnetMin = parseSubnetBound(raw, "SubnetMin", network, subnetLen) ?? (network.network + subnetSize) >>> 0;
  const subnetMax =
    parseSubnetBound(raw, "SubnetMax", network, subnetLen) ?? (network.last - subnetSize + 1) >>> 0;
  if (subnetMin > subnetMax) {
    throw new Error(`SubnetMin: ${formatIpv4(subnetMin)} is above SubnetMax ${formatIpv4(subnetMax)}`);
  }
  return { network, subnetLen, subnetMin, subnetMax };
}

/**
 * An IPv6-only network's IPv4 fields: flanneld still decodes them (a Network that is not an IPv4
 * CIDR fails its JSON decoding) and then uses none of them. weft does the same, and names them.
 */
function checkUnusedIpv4Fields(raw: JsonObject): string[] {
  const networkText = readString(raw, "Network", "Network");
  if (networkText !== undefined) Ipv4Subnet.parse(networkText, "Network (unused: EnableIPv4 is false)");
  readInteger(raw, "SubnetLen", "SubnetLen");
  for (const field of ["SubnetMin", "SubnetMax"]) {
    const text = readString(raw, field, field);
    if (text !== undefined) parseIpv4(text, `${field} (unused: EnableIPv4 is false)`);
  }
  return ["Network", "SubnetLen", "SubnetMin", "SubnetMax"].filter((field) => readField(raw, field) !== undefined);
}

function parseSubnetLen(raw: JsonObject, network: Ipv4Subnet): number {
  const given = readInteger(raw, "SubnetLen", "SubnetLen");
  if (given === undefined) return network.prefixLength <= 22 ? 24 : network.prefixLength + 2;
  if (given > 30) throw new Error(`SubnetLen: ${given} is longer than /30`);
  if (given < network.prefixLength + 2) {
    throw new Error(
      `SubnetLen: ${given} leaves fewer than four subnets in Network ${network}; use /${network.prefixLength + 2} or longer`,
    );
  }
  return given;
}

function parseSubnetBound(raw: JsonObject, field: string, network: Ipv4Subnet, subnetLen: number): Ipv4Number | undefined {
  const text = readString(raw, field, field);
  if (text === undefined) return undefined;
  const address = parseIpv4(text, field);
  if (!network.containsAddress(address)) throw new Error(`${field}: ${text} is outside Network ${network}`);
  if (new Ipv4Subnet(address, subnetLen).network !== address) {
    throw new Error(`${field}: ${text} is not on a /${subnetLen} boundary (SubnetLen)`);
  }
  return address;
}

function parseIpv6Network(raw: JsonObject): Ipv6NetworkConfig {
  const networkText = readString(raw, "IPv6Network", "IPv6Network");
  if (networkText === undefined) throw new Error('IPv6Network: missing, but EnableIPv6 is true; set it to an IPv6 CIDR such as "fd66::/48"');
  const network = Ipv6Subnet.parse(networkText, "IPv6Network");
  const prefix = network.prefixLength;
  if (prefix > 124) throw new Error(`IPv6Network: ${network} is too small (prefix longer than /124)`);
  const givenLen = readInteger(raw, "IPv6SubnetLen", "IPv6SubnetLen");
  const subnetLen = givenLen ?? (prefix <= 62 ? 64 : prefix + 2);
  if (subnetLen > 126 || subnetLen < prefix + 2) {
    throw new Error(`IPv6SubnetLen: ${subnetLen} must be between /${prefix + 2} and /126 for ${network}`);
  }
  const subnetSize = 1n << BigInt(128 - subnetLen);
  const subnetMin = parseIpv6SubnetBound(raw, "IPv6SubnetMin", network, subnetLen) ?? network.network + subnetSize;
  const subnetMax = parseIpv6SubnetBound(raw, "IPv6SubnetMax", network, subnetLen) ?? network.last - subnetSize + 1n;
  if (subnetMin > subnetMax) {
    throw new Error(`IPv6SubnetMin: ${formatIpv6(subnetMin)} is above IPv6SubnetMax ${formatIpv6(subnetMax)}`);
  }
  return { network, subnetLen, subnetMin, subnetMax };
}

function parseIpv6SubnetBound(raw: JsonObject, field: string, network: Ipv6Subnet, subnetLen: number): Ipv6Number | undefined {
  const text = readString(raw, field, field);
  if (text === undefined) return undefined;
  const address = parseIpv6(text, field);
  if (!network.containsAddress(address)) throw new Error(`${field}: ${text} is outside IPv6Network ${network}`);
  if (new Ipv6Subnet(address, subnetLen).network !== address) {
    throw new Error(`${field}: ${text} is not on a /${subnetLen} boundary (IPv6SubnetLen)`);
  }
  return address;
}

function parseBackend(raw: JsonObject): BackendConfig {
  const backend = readField(raw, "Backend");
  if (backend === undefined || backend === null) return { type: DEFAULT_BACKEND_TYPE, options: { Type: DEFAULT_BACKEND_TYPE } };
  if (!isJsonObject(backend)) throw new Error(`Backend: ${JSON.stringify(backend)} is not an object`);
  const type = readString(backend, "Type", "Backend.Type") ?? DEFAULT_BACKEND_TYPE;
  if (type.trim() === "") throw new Error('Backend.Type: empty; use "vxlan", "udp", "host-gw" or "alloc"');
  return { type: type.toLowerCase(), options: backend };
}
