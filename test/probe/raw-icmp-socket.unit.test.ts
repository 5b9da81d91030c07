import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { openIcmpSocket, ProbeUnavailableError, type RawSocket, type RawSocketModule } from "../../src/probe/raw-icmp-socket.js";

/**
 * What happens after a socket error, which the kernel does not produce on demand: a stand-in for
 * raw-socket records each socket it creates (the real socket is tested in pinger.test.ts).
 */
class FakeRawSocket extends EventEmitter {
  closed = false;
  sent: string[] = [];
  options: number[] = [];
  constructor(readonly created: { protocol: number; addressFamily?: number }) {
    super();
  }
  send(_buffer: Buffer, _offset: number, _length: number, address: string, after: (error: Error | null, bytes: number) => void): void {
    if (this.closed) throw new Error("send on a closed socket");
    this.sent.push(address);
    after(null, _length);
  }
  levels: number[] = [];
  setOption(level: number, option: number): void {
    this.levels.push(level);
    this.options.push(option);
  }
  close(): void {
    if (this.closed) throw new Error("already closed");
    this.closed = true;
  }
}

function fakeModule(): { module: RawSocketModule; sockets: FakeRawSocket[] } {
  const sockets: FakeRawSocket[] = [];
  const module: RawSocketModule = {
    createSocket: (options) => {
      const socket = new FakeRawSocket(options);
      sockets.push(socket);
      return socket as unknown as RawSocket;
    },
    Protocol: { ICMP: 1, ICMPv6: 58 },
    AddressFamily: { IPv4: 1, IPv6: 2 },
    SocketLevel: { IPPROTO_IP: 0, IPPROTO_IPV6: 41 },
  };
  return { module, sockets };
}

describe("the ICMP socket after an error", () => {
  it("opens at once, with the ICMP filter and DF set", () => {
    const { module, sockets } = fakeModule();
    openIcmpSocket(() => undefined, 4, module);
    expect(sockets).toHaveLength(1);
    expect(sockets[0]?.options).toEqual([1, 10]); // ICMP_FILTER, IP_MTU_DISCOVER
  });

  it("opens an ICMPv6 socket with the ICMPv6 filter, PMTU probing and don't-fragment, and hands over the sender", () => {
    const { module, sockets } = fakeModule();
    const received: string[] = [];
    openIcmpSocket((_packet, source) => received.push(source), 6, module);
    expect(sockets[0]?.created).toMatchObject({ protocol: 58, addressFamily: 2 });
    // ICMP6_FILTER at IPPROTO_ICMPV6, IPV6_MTU_DISCOVER and IPV6_DONTFRAG at IPPROTO_IPV6.
    expect(sockets[0]?.levels).toEqual([58, 41, 41]);
    expect(sockets[0]?.options).toEqual([1, 23, 62]);
    sockets[0]?.emit("message", Buffer.from([129]), "fd77::12");
    expect(received).toEqual(["fd77::12"]);
  });

  it("closes the failed socket, stops listening to it, and sends on a new one", async () => {
    const { module, sockets } = fakeModule();
    const received: number[] = [];
    const icmp = openIcmpSocket((packet) => received.push(packet[0] as number), 4, module);
    await icmp.send(Buffer.alloc(8), "10.0.0.1");
    const first = sockets[0] as FakeRawSocket;
    first.emit("error", new Error("recv failed"));
    expect(first.closed).toBe(true);
    await icmp.send(Buffer.alloc(8), "10.0.0.2");
    expect(sockets).toHaveLength(2);
    expect(first.sent).toEqual(["10.0.0.1"]);
    expect(sockets[1]?.sent).toEqual(["10.0.0.2"]);
    sockets[1]?.emit("message", Buffer.from([2]), "10.0.0.2");
    expect(received).toEqual([2]);
  });

  it("survives raw-socket having closed the socket itself", async () => {
    const { module, sockets } = fakeModule();
    const icmp = openIcmpSocket(() => undefined, 4, module);
    const first = sockets[0] as FakeRawSocket;
    first.close();
    expect(() => first.emit("error", new Error("poll failed"))).not.toThrow();
    await icmp.send(Buffer.alloc(8), "10.0.0.3");
    expect(sockets[1]?.sent).toEqual(["10.0.0.3"]);
  });

  it("refuses sends after close, and says why when raw-socket is missing", async () => {
    const { module, sockets } = fakeModule();
    const icmp = openIcmpSocket(() => undefined, 4, module);
    icmp.close();
    expect(sockets[0]?.closed).toBe(true);
    await expect(icmp.send(Buffer.alloc(8), "10.0.0.4")).rejects.toThrow("the ICMP socket is closed");
    expect(() => openIcmpSocket(() => undefined, 4, new ProbeUnavailableError("probing is unavailable: test"))).toThrow("probing is unavailable: test");
  });
});
