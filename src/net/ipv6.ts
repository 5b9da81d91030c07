/**
 * IPv6 addresses and subnets as unsigned 128-bit bigints.
 *
 * ip-num parses and validates IPv6 well, but prints addresses uncompressed (fd66:0:0:6:0:0:0:0),
 * and lease keys must be byte-identical to flanneld's, which prints them as Go's net.IP does:
 * RFC 5952 (fd66:0:0:6::). Subnet walks are a few hundred steps at most (flannel's 100
 * candidates), so bigints are cheap enough; IPv4 keeps its plain-number module for the hot paths.
 */

export type Ipv6Number = bigint;

const GROUPS = 8;
const ALL_ONES = (1n << 128n) - 1n;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
const DOTTED_QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/**
 * Parses an IPv6 address in any RFC 4291 text form (`::` compression, a trailing dotted IPv4
 * part); undefined when it is not one. Zone ids (`fe80::1%eth0`) are refused: none belongs in a
 * lease, a config or a route.
 */
export function tryParseIpv6(text: string): Ipv6Number | undefined {
  const trimmed = text.trim();
  if (trimmed === "" || trimmed.includes("%")) return undefined;
  const halves = trimmed.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] === "" ? [] : (halves[0] as string).split(":");
  const tail = halves.length === 2 ? (halves[1] === "" ? [] : (halves[1] as string).split(":")) : [];
  const groups = [...head, ...tail];
  const words: number[] = [];
  for (const [i, group] of groups.entries()) {
    const last = i === groups.length - 1;
    const quad = last ? DOTTED_QUAD.exec(group) : null;
    if (quad) {
      const octets = quad.slice(1, 5).map(Number);
      if (octets.some((octet, j) => octet > 255 || ((quad[j + 1] as string).length > 1 && (quad[j + 1] as string).startsWith("0")))) return undefined;
      words.push(((octets[0] as number) << 8) | (octets[1] as number), ((octets[2] as number) << 8) | (octets[3] as number));
    } else if (HEX_GROUP.test(group)) {
      words.push(Number.parseInt(group, 16));
    } else {
      return undefined;
    }
  }
  if (halves.length === 2 ? words.length > GROUPS - 1 : words.length !== GROUPS) return undefined;
  const headWords = words.slice(0, head.length);
  const tailWords = words.slice(head.length);
  const all = [...headWords, ...new Array<number>(GROUPS - words.length).fill(0), ...tailWords];
  return all.reduce((value, word) => (value << 16n) | BigInt(word), 0n);
}

export function parseIpv6(text: string, what = "address"): Ipv6Number {
  const value = tryParseIpv6(text);
  if (value === undefined) throw new Error(`${what}: "${text}" is not an IPv6 address (expected e.g. fd00::1)`);
  return value;
}

/** RFC 5952 text, as Go's net.IP prints it: lower case, the longest run (≥ 2) of zero groups as `::`. */
export function formatIpv6(value: Ipv6Number): string {
  const words: number[] = [];
  for (let i = GROUPS - 1; i >= 0; i--) words.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < GROUPS; ) {
    if (words[start] !== 0) {
      start++;
      continue;
    }
    let end = start;
    while (end < GROUPS && words[end] === 0) end++;
    if (end - start > bestLength) {
      bestStart = start;
      bestLength = end - start;
    }
    start = end;
  }
  const hex = (part: number[]) => part.map((word) => word.toString(16)).join(":");
  if (bestStart < 0) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLength))}`;
}

export function ipv6PrefixMask(prefixLength: number): Ipv6Number {
  return prefixLength === 0 ? 0n : (ALL_ONES << BigInt(128 - prefixLength)) & ALL_ONES;
}

/** An IPv6 network: network address (host bits zero) and prefix length. Immutable. */
export class Ipv6Subnet {
  readonly network: Ipv6Number;
  readonly prefixLength: number;

  constructor(address: Ipv6Number, prefixLength: number) {
    if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > 128) {
      throw new Error(`prefix length ${prefixLength} is outside 0..128`);
    }
    if (address < 0n || address > ALL_ONES) throw new Error(`${address} is not a 128-bit address`);
    this.prefixLength = prefixLength;
    // Host bits are masked, as flannel does for IPv6Network and subnet.env values.
    this.network = address & ipv6PrefixMask(prefixLength);
  }

  /** Parses "addr/len"; host bits are masked. `what` names the field in the error. */
  static parse(text: string, what = "subnet"): Ipv6Subnet {
    const subnet = Ipv6Subnet.tryParse(text);
    if (!subnet) throw new Error(`${what}: "${text}" is not an IPv6 CIDR (expected e.g. fd00::/64)`);
    return subnet;
  }

  static tryParse(text: string): Ipv6Subnet | undefined {
    const slash = text.indexOf("/");
    if (slash < 0) return undefined;
    const address = tryParseIpv6(text.slice(0, slash));
    const lengthText = text.slice(slash + 1).trim();
    if (address === undefined || !/^\d{1,3}$/.test(lengthText)) return undefined;
    const prefixLength = Number(lengthText);
    if (prefixLength > 128) return undefined;
    return new Ipv6Subnet(address, prefixLength);
  }

  /** Number of addresses (a bigint: a /64 holds 2^64). */
  get size(): bigint {
    return 1n << BigInt(128 - this.prefixLength);
  }

  get mask(): Ipv6Number {
    return ipv6PrefixMask(this.prefixLength);
  }

  get last(): Ipv6Number {
    return this.network + this.size - 1n;
  }

  containsAddress(address: Ipv6Number): boolean {
    return (address & this.mask) === this.network;
  }

  contains(other: Ipv6Subnet): boolean {
    return other.prefixLength >= this.prefixLength && this.containsAddress(other.network);
  }

  overlaps(other: Ipv6Subnet): boolean {
    return this.contains(other) || other.contains(this);
  }

  equals(other: Ipv6Subnet): boolean {
    return this.network === other.network && this.prefixLength === other.prefixLength;
  }

  /** The address `offset` places into the subnet (offset 1 is docker0's IPv6 gateway address). */
  addressAt(offset: bigint | number): Ipv6Number {
    return this.network + BigInt(offset);
  }

  toString(): string {
    return `${formatIpv6(this.network)}/${this.prefixLength}`;
  }
}
