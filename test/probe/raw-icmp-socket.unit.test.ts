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
  send(_buffer: Buffer, _offset: number, _length: number, address: string, after: (error: Error | null, bytes: number) => void): void {
    if (this.closed) throw new Error("send on a closed socket");
    this.sent.push(address);
    after(null, _length);
  }
  setOption(_level: number, option: number): void {
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
    createSocket: () => {
      const socket = new FakeRawSocket();
      sockets.push(socket);
      return socket as unknown as RawSocket;
    },
    Protocol: { ICMP: 1 },
    SocketLevel: { IPPROTO_IP: 0 },
  };
  return { module, sockets };
}

describe("the ICMP socket after an error", () => {
  it("opens at once, with the ICMP filter and DF set", () => {
    const { module, sockets } = fakeModule();
    openIcmpSocket(() => undefined, module);
    expect(sockets).toHaveLength(1);
    expect(sockets[0]?.options).toEqual([1, 10]); // ICMP_FILTER, IP_MTU_DISCOVER
  });

  it("closes the failed socket, stops listening to it, and sends on a new one", async () => {
    const { module, sockets } = fakeModule();
    const received: number[] = [];
    const icmp = openIcmpSocket((packet) => received.push(packet[0] as number), module);
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
    const icmp = openIcmpSocket(() => undefined, module);
    const first = sockets[0] as FakeRawSocket;
    first.close();
    expect(() => first.emit("error", new Error("poll failed"))).not.toThrow();
    await icmp.send(Buffer.alloc(8), "10.0.0.3");
    expect(sockets[1]?.sent).toEqual(["10.0.0.3"]);
  });

  it("refuses sends after close, and says why when raw-socket is missing", async () => {
    const { module, sockets } = fakeModule();
    const icmp = openIcmpSocket(() => undefined, module);
    icmp.close();
    expect(sockets[0]?.closed).toBe(true);
    await expect(icmp.send(Buffer.alloc(8), "10.0.0.4")).rejects.toThrow("the ICMP socket is closed");
    expect(() => openIcmpSocket(() => undefined, new ProbeUnavailableError("probing is unavailable: test"))).toThrow("probing is unavailable: test");
  });
});
