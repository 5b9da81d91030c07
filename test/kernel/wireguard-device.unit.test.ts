import { describe, expect, it } from "vitest";
import { parseWgDump, peerArguments } from "../../src/kernel/wireguard-device.js";

// Keys as `wg genkey`/`wg pubkey`/`wg genpsk` print them (throw-away values made for this test).
const PRIVATE = "CAv9UAfsHHNPJGYEdYUNKN3yIlYodZuDVZjPOz4T62A=";
const PUBLIC = "1HNJy2U9a0OUrb6mAJNm8ioMCIm18zYqTR4TtYFFrlQ=";
const PEER_A = "YzD/Q79TQBYibyyyBDL4I2Ut8FT+xKXFD2HxqN5c+mc=";
const PEER_B = "RIacqa2wbtIpnZoTRhL4RhiaIJvypx7mZ9XzqrlGk1Y=";
const PSK = "VK5bgp9RLb5f6ZxCebG3Dxwu+PmKbW02o7MqdZ9udhc=";
const OTHER_PSK = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlYzE=";

const line = (...fields: (string | number)[]) => fields.join("\t");

describe("parseWgDump (wg show <dev> dump)", () => {
  it("reads the interface and its peers, keeping no key but the public ones", () => {
    const text = [
      line(PRIVATE, PUBLIC, 51820, "off"),
      line(PEER_A, PSK, "192.168.77.12:51820", "10.66.3.0/24", 1764639000, 1234, 5678, 25),
      line(PEER_B, "(none)", "(none)", "10.66.4.0/24,10.66.5.0/24", 0, 0, 0, "off"),
      "",
    ].join("\n");
    const dump = parseWgDump(text, PSK);
    expect(dump.device).toEqual({ publicKey: PUBLIC, listenPort: 51820 });
    expect(dump.peers).toEqual([
      { publicKey: PEER_A, presharedKey: "ours", endpoint: "192.168.77.12:51820", allowedIps: ["10.66.3.0/24"], latestHandshakeSeconds: 1764639000, rxBytes: 1234, txBytes: 5678, persistentKeepaliveSeconds: 25 },
      { publicKey: PEER_B, presharedKey: "none", endpoint: undefined, allowedIps: ["10.66.4.0/24", "10.66.5.0/24"], latestHandshakeSeconds: 0, rxBytes: 0, txBytes: 0, persistentKeepaliveSeconds: 0 },
    ]);
    expect(JSON.stringify(dump)).not.toContain(PRIVATE);
    expect(JSON.stringify(dump)).not.toContain(PSK);
  });

  it("tells our PSK from another one, and from none when we have none", () => {
    const text = [line(PRIVATE, PUBLIC, 51820, "off"), line(PEER_A, OTHER_PSK, "(none)", "(none)", 0, 0, 0, "off")].join("\n");
    expect(parseWgDump(text, PSK).peers[0]?.presharedKey).toBe("other");
    expect(parseWgDump(text).peers[0]?.presharedKey).toBe("other");
    expect(parseWgDump(text).peers[0]?.allowedIps).toEqual([]);
  });

  it("reads a device with no key and no peers yet", () => {
    expect(parseWgDump(line("(none)", "(none)", 0, "off"))).toEqual({ device: { publicKey: "(none)", listenPort: 0 }, peers: [] });
  });

  it("refuses what is not a dump, naming the line, never echoing a key", () => {
    expect(() => parseWgDump("")).toThrow(/first line has 0 fields/);
    expect(() => parseWgDump(line(PRIVATE, PUBLIC, 51820))).toThrow(/first line has 3 fields/);
    expect(() => parseWgDump([line(PRIVATE, PUBLIC, "x", "off")].join("\n"))).toThrow(/line 1: listen port "x"/);
    expect(() => parseWgDump([line(PRIVATE, PUBLIC, 1, "off"), line(PEER_A, "(none)", "(none)")].join("\n"))).toThrow(/line 2: 3 fields, not a peer's 8/);
    expect(() => parseWgDump([line(PRIVATE, PUBLIC, 1, "off"), line(PEER_A, PSK, "(none)", "(none)", -1, 0, 0, "off")].join("\n"))).toThrow(/line 2: latest handshake "-1"/);
    try {
      parseWgDump([line(PRIVATE, PUBLIC, "x", "off")].join("\n"));
    } catch (error) {
      expect(String(error)).not.toContain(PRIVATE);
    }
  });
});

describe("peerArguments (wg set … peer clauses)", () => {
  const peer = { publicKey: PEER_A, endpoint: "192.168.77.12:51820", allowedIps: ["10.66.3.0/24"], persistentKeepaliveSeconds: 0 };

  it("writes flanneld's peer: key, endpoint, allowed IPs, keepalive (off or seconds), the PSK as a file", () => {
    expect(peerArguments([peer])).toEqual(["peer", PEER_A, "endpoint", "192.168.77.12:51820", "allowed-ips", "10.66.3.0/24", "persistent-keepalive", "off"]);
    expect(peerArguments([{ ...peer, persistentKeepaliveSeconds: 25 }], "/tmp/x/psk")).toEqual([
      "peer", PEER_A, "endpoint", "192.168.77.12:51820", "allowed-ips", "10.66.3.0/24", "persistent-keepalive", "25", "preshared-key", "/tmp/x/psk",
    ]);
  });

  it("puts many peers in one call", () => {
    expect(peerArguments([peer, { ...peer, publicKey: PEER_B }]).filter((arg) => arg === "peer")).toHaveLength(2);
  });
});
