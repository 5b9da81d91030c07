import { randomInt } from "node:crypto";
import { errorMessage } from "../errors/error-message.js";
import { decodeIcmp, encodeEchoRequest, type IcmpMessage } from "./icmp-packet.js";
import type { IcmpSocket } from "./raw-icmp-socket.js";

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
  destination: string;
  /** IP packet size in bytes. */
  bytes: number;
  timeoutMs: number;
}

interface Pending {
  destination: string;
  sentAt: bigint;
  settle(outcome: EchoOutcome): void;
}

/**
 * Echo requests over one ICMP socket, many in flight at once, each answered by the reply or
 * error that quotes its identifier and sequence (a raw socket sees every echo reply of the host:
 * other pings' are ignored). The identifier is random per pinger.
 */
export class Pinger {
  private readonly identifier = randomInt(0, 0x10000);
  private sequence = randomInt(0, 0x10000);
  private readonly pending = new Map<number, Pending>();
  private readonly socket: IcmpSocket;

  constructor(openSocket: (onPacket: (packet: Buffer) => void) => IcmpSocket) {
    this.socket = openSocket((packet) => this.receive(packet));
  }

  echo(request: EchoRequest): Promise<EchoOutcome> {
    const sequence = this.nextSequence();
    const packet = encodeEchoRequest({ identifier: this.identifier, sequence }, request.bytes);
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle({ kind: "timeout" }), request.timeoutMs);
      const settle = (outcome: EchoOutcome) => {
        if (this.pending.get(sequence)?.settle !== settle) return;
        clearTimeout(timer);
        this.pending.delete(sequence);
        resolve(outcome);
      };
      this.pending.set(sequence, { destination: request.destination, sentAt: process.hrtime.bigint(), settle });
      this.socket.send(packet, request.destination).catch((error: unknown) => settle({ kind: "send-failed", error: errorMessage(error) }));
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

  /** Runs synchronously on the socket's borrowed buffer: decodeIcmp copies out everything kept. */
  private receive(packet: Buffer): void {
    const message = decodeIcmp(packet);
    if (!message || message.identifier !== this.identifier) return;
    const pending = this.pending.get(message.sequence);
    if (!pending || !matches(message, pending.destination)) return;
    pending.settle(outcomeOf(message, pending.sentAt));
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
