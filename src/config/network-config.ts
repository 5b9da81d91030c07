import { IPv6CidrRange, Validator } from "ip-num";
import { Ipv4Subnet, formatIpv4, parseIpv4, type Ipv4Number } from "../net/ipv4.js";
import { isJsonObject, readBoolean, readField, readInteger, readString, type JsonObject } from "../codec/json-fields.js";
import { errorMessage } from "../errors/error-message.js";

/** The cluster network, from `<prefix>/config` (flannel-compat §1.2), validated and with defaults applied. */
export interface NetworkConfig {
  enableIPv4: boolean;
  enableIPv6: boolean;
  network: Ipv4Subnet;
  subnetLen: number;
  /** Start address of the first subnet that may be leased. */
  subnetMin: Ipv4Number;
  /** Start address of the last subnet that may be leased. */
  subnetMax: Ipv4Number;
  ipv6?: Ipv6NetworkConfig;
  enableNFTables: boolean;
  backend: BackendConfig;
}

export interface Ipv6NetworkConfig {
  network: string;
  subnetLen: number;
  subnetMin?: string;
  subnetMax?: string;
}

export interface BackendConfig {
  type: string;
  /** The whole Backend object as written (Type included); backends read their own fields. */
  options: JsonObject;
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
  if (!enableIPv4) {
    throw new Error("EnableIPv4: false is not supported: weft routes IPv4 container networks only");
  }

  const networkText = readString(raw, "Network", "Network");
  if (networkText === undefined) throw new Error('Network: missing; set it to an IPv4 CIDR such as "10.66.0.0/16"');
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

  const ipv6 = enableIPv6 ? parseIpv6(raw) : undefined;
  const enableNFTables = readBoolean(raw, "EnableNFTables", "EnableNFTables") ?? false;

  return { enableIPv4, enableIPv6, network, subnetLen, subnetMin, subnetMax, ipv6, enableNFTables, backend: parseBackend(raw) };
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

function parseIpv6(raw: JsonObject): Ipv6NetworkConfig {
  const network = readString(raw, "IPv6Network", "IPv6Network");
  if (network === undefined) throw new Error("IPv6Network: missing, but EnableIPv6 is true");
  let prefix: number;
  try {
    prefix = Number(IPv6CidrRange.fromCidr(network).cidrPrefix.getValue());
  } catch {
    throw new Error(`IPv6Network: "${network}" is not an IPv6 CIDR (expected e.g. fc00::/48)`);
  }
  if (prefix > 124) throw new Error(`IPv6Network: ${network} is too small (prefix longer than /124)`);
  const givenLen = readInteger(raw, "IPv6SubnetLen", "IPv6SubnetLen");
  const subnetLen = givenLen ?? (prefix <= 62 ? 64 : prefix + 2);
  if (subnetLen > 126 || subnetLen < prefix + 2) {
    throw new Error(`IPv6SubnetLen: ${subnetLen} must be between /${prefix + 2} and /126 for ${network}`);
  }
  const bound = (field: string) => {
    const text = readString(raw, field, field);
    if (text !== undefined && !Validator.isValidIPv6String(text)[0]) throw new Error(`${field}: "${text}" is not an IPv6 address`);
    return text;
  };
  return { network, subnetLen, subnetMin: bound("IPv6SubnetMin"), subnetMax: bound("IPv6SubnetMax") };
}

function parseBackend(raw: JsonObject): BackendConfig {
  const backend = readField(raw, "Backend");
  if (backend === undefined || backend === null) return { type: DEFAULT_BACKEND_TYPE, options: { Type: DEFAULT_BACKEND_TYPE } };
  if (!isJsonObject(backend)) throw new Error(`Backend: ${JSON.stringify(backend)} is not an object`);
  const type = readString(backend, "Type", "Backend.Type") ?? DEFAULT_BACKEND_TYPE;
  if (type.trim() === "") throw new Error('Backend.Type: empty; use "vxlan", "udp", "host-gw" or "alloc"');
  return { type: type.toLowerCase(), options: backend };
}
