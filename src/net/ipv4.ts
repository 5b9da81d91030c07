/**
 * IPv4 addresses and subnets as plain unsigned 32-bit numbers.
 * The lease code compares and walks thousands of subnets; numbers keep that cheap and exact.
 */

export type Ipv4Number = number;

const DOTTED_QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses a dotted-quad IPv4 address; returns undefined when it is not one. */
export function tryParseIpv4(text: string): Ipv4Number | undefined {
  const match = DOTTED_QUAD.exec(text.trim());
  if (!match) return undefined;
  let value = 0;
  for (let i = 1; i <= 4; i++) {
    const part = match[i] as string;
    if (part.length > 1 && part.startsWith("0")) return undefined; // "010" is ambiguous (octal in some tools)
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value >>> 0;
}

export function parseIpv4(text: string, what = "address"): Ipv4Number {
  const value = tryParseIpv4(text);
  if (value === undefined) throw new Error(`${what}: "${text}" is not an IPv4 address (expected a.b.c.d)`);
  return value;
}

export function formatIpv4(value: Ipv4Number): string {
  return `${value >>> 24}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

export function prefixMask(prefixLength: number): Ipv4Number {
  return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

/** An IPv4 network: network address (host bits zero) and prefix length. Immutable. */
export class Ipv4Subnet {
  readonly network: Ipv4Number;
  readonly prefixLength: number;

  constructor(address: Ipv4Number, prefixLength: number) {
    if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > 32) {
      throw new Error(`prefix length ${prefixLength} is outside 0..32`);
    }
    this.prefixLength = prefixLength;
    // Host bits are masked, as flannel does for Network and for subnet.env values.
    this.network = (address & prefixMask(prefixLength)) >>> 0;
  }

  /** Parses "a.b.c.d/len"; host bits are masked. `what` names the field in the error. */
  static parse(text: string, what = "subnet"): Ipv4Subnet {
    const subnet = Ipv4Subnet.tryParse(text);
    if (!subnet) throw new Error(`${what}: "${text}" is not an IPv4 CIDR (expected a.b.c.d/len)`);
    return subnet;
  }

  static tryParse(text: string): Ipv4Subnet | undefined {
    const slash = text.indexOf("/");
    if (slash < 0) return undefined;
    const address = tryParseIpv4(text.slice(0, slash));
    const lengthText = text.slice(slash + 1);
    if (address === undefined || !/^\d{1,2}$/.test(lengthText)) return undefined;
    const prefixLength = Number(lengthText);
    if (prefixLength > 32) return undefined;
    return new Ipv4Subnet(address, prefixLength);
  }

  get size(): number {
    return 2 ** (32 - this.prefixLength);
  }

  get mask(): Ipv4Number {
    return prefixMask(this.prefixLength);
  }

  /** Last address of the subnet (the broadcast address for prefixes shorter than /31). */
  get last(): Ipv4Number {
    return (this.network + this.size - 1) >>> 0;
  }

  containsAddress(address: Ipv4Number): boolean {
    return ((address & this.mask) >>> 0) === this.network;
  }

  contains(other: Ipv4Subnet): boolean {
    return other.prefixLength >= this.prefixLength && this.containsAddress(other.network);
  }

  overlaps(other: Ipv4Subnet): boolean {
    return this.contains(other) || other.contains(this);
  }

  equals(other: Ipv4Subnet): boolean {
    return this.network === other.network && this.prefixLength === other.prefixLength;
  }

  /** The address `offset` places into the subnet (offset 1 is docker0's --bip address). */
  addressAt(offset: number): Ipv4Number {
    return (this.network + offset) >>> 0;
  }

  toString(): string {
    return `${formatIpv4(this.network)}/${this.prefixLength}`;
  }
}
