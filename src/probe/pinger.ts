import { randomInt } from "node:crypto";
import { errorMessage } from "../errors/error-message.js";
import type { IpFamily } from "../net/ip-subnet.js";
import { formatIpv6, tryParseIpv6 } from "../net/ipv6.js";
import { decodeIcmp, encodeEchoRequest, type IcmpMessage } from "./icmp-packet.js";
import { decodeIcmpV6, encodeEchoRequestV6 } from "./icmpv6-packet.js";
import type { IcmpSocket, OpenIcmpSocket } from "./raw-icmp-socket.js";

/** What became of one echo request. */
export type EchoOutcome =
  | { kind: "reply"; rttMicros: number }
  /** A router (or this host's own tunnel device) said the packet is too big; `mtu` 0 when it did not say how big fits. */
  | { kind: "frag-needed"; mtu: number; from: string }
  | { kind: "unreachable"; code: number; from: string }
  | { kind: "time-exceeded"; from: string }
  /** This host refused to send it (e.g. "Message too long": bigger than the route's MTU). */
  | { kind: "send-failed"; error: string }
  | { kind: "timeout" };

export interface EchoRequest {
  /** An IPv4 or (through an ICMPv6 socket) an IPv6 address. */
  destination: string;
  /** IP packet size in bytes. */
  bytes: number;
  timeoutMs: number;
}

/** What the probes need of a pinger: one echo at a time, many in flight. */
export interface Echoer {
  echo(request: EchoRequest): Promise<EchoOutcome>;
}

/** The family of an address as the probes write it ("fd77::12" has colons, "192.168.77.12" none). */
export function addressFamily(address: string): IpFamily {
  return address.includes(":") ? 6 : 4;
}

interface Pending {
  destination: string;
  sentAt: bigint;
  settle(outcome: EchoOutcome): void;
}

/**
 * Echo requests over one ICMP (family 4) or ICMPv6 (family 6) socket, many in flight at once,
 * each answered by the reply or error that quotes its identifier and sequence (a raw socket sees
 * every echo reply of the host: other pings' are ignored). The identifier is random per pinger.
 * IPv6 addresses are compared in canonical form (RFC 5952), however the caller wrote them.
 */
export class Pinger implements Echoer {
  private readonly identifier = randomInt(0, 0x10000);
  private sequence = randomInt(0, 0x10000);
  private readonly pending = new Map<number, Pending>();
  private readonly socket: IcmpSocket;

  constructor(openSocket: OpenIcmpSocket, readonly family: IpFamily = 4) {
    this.socket = openSocket((packet, source) => this.receive(packet, source), family);
  }

  echo(request: EchoRequest): Promise<EchoOutcome> {
    const sequence = this.nextSequence();
    const id = { identifier: this.identifier, sequence };
    let packet: Buffer;
    let destination = request.destination;
    if (this.family === 6) {
      const address = tryParseIpv6(destination);
      if (address === undefined) return Promise.resolve({ kind: "send-failed", error: `"${destination}" is not an IPv6 address` });
      destination = formatIpv6(address);
      packet = encodeEchoRequestV6(id, request.bytes);
    } else {
      packet = encodeEchoRequest(id, request.bytes);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle({ kind: "timeout" }), request.timeoutMs);
      const settle = (outcome: EchoOutcome) => {
        if (this.pending.get(sequence)?.settle !== settle) return;
        clearTimeout(timer);
        this.pending.delete(sequence);
        resolve(outcome);
      };
      this.pending.set(sequence, { destination, sentAt: process.hrtime.bigint(), settle });
      this.socket.send(packet, destination).catch((error: unknown) => settle({ kind: "send-failed", error: errorMessage(error) }));
    });
  }

  close(): void {
    this.socket.close();
    for (const pending of [...this.pending.values()]) pending.settle({ kind: "timeout" });
  }

  private nextSequence(): number {
    // Skip sequences still in flight (65536 of them wrap only with very long timeouts).
    do this.sequence = (this.sequence + 1) & 0xffff;
    while (this.pending.has(this.sequence));
    return this.sequence;
  }

  /** Runs synchronously on the socket's borrowed buffer: the decoders copy out everything kept. */
  private receive(packet: Buffer, source: string): void {
    const message = this.family === 6 ? decodeIcmpV6(packet, source) : decodeIcmp(packet);
    if (!message || message.identifier !== this.identifier) return;
    const pending = this.pending.get(message.sequence);
    if (!pending || !matches(message, pending.destination)) return;
    pending.settle(outcomeOf(message, pending.sentAt));
  }
}

/**
 * A Pinger per family, each opened at its first echo to an address of that family (an IPv4-only
 * network never opens an ICMPv6 socket). A family whose socket cannot be opened (a kernel
 * without IPv6) answers every echo with "send-failed" and the reason, so its peers read "peer
 * down" with a cause while the other family is probed as usual.
 */
export class Pingers implements Echoer {
  private readonly pingers = new Map<IpFamily, Pinger | Error>();

  /** `onOpenFailure`: told once per family whose socket could not be opened at an echo (a log line). */
  constructor(
    private readonly openSocket: OpenIcmpSocket,
    private readonly onOpenFailure: (family: IpFamily, error: unknown) => void = () => undefined,
  ) {}

  /** Opens the family's socket now; throws what opening it threw (CAP_NET_RAW missing, no addon). */
  open(family: IpFamily): Pinger {
    const existing = this.pingers.get(family);
    if (existing instanceof Pinger) return existing;
    if (existing instanceof Error) throw existing;
    try {
      const pinger = new Pinger(this.openSocket, family);
      this.pingers.set(family, pinger);
      return pinger;
    } catch (error) {
      this.pingers.set(family, error instanceof Error ? error : new Error(String(error)));
      throw error;
    }
  }

  echo(request: EchoRequest): Promise<EchoOutcome> {
    const family = addressFamily(request.destination);
    const known = this.pingers.has(family);
    let pinger: Pinger;
    try {
      pinger = this.open(family);
    } catch (error) {
      if (!known) this.onOpenFailure(family, error);
      return Promise.resolve({ kind: "send-failed", error: errorMessage(error) });
    }
    return pinger.echo(request);
  }

  close(): void {
    for (const pinger of this.pingers.values()) if (pinger instanceof Pinger) pinger.close();
    this.pingers.clear();
  }
}

function matches(message: IcmpMessage, destination: string): boolean {
  return message.kind === "echo-reply" ? message.from === destination : message.to === destination;
}

function outcomeOf(message: IcmpMessage, sentAt: bigint): EchoOutcome {
  switch (message.kind) {
    case "echo-reply":
      return { kind: "reply", rttMicros: Number((process.hrtime.bigint() - sentAt) / 1000n) };
    case "frag-needed":
      return { kind: "frag-needed", mtu: message.nextHopMtu, from: message.from };
    case "unreachable":
      return { kind: "unreachable", code: message.code, from: message.from };
    case "time-exceeded":
      return { kind: "time-exceeded", from: message.from };
  }
}
