import type { Ipv4Subnet } from "../net/ipv4.js";
import type { Ipv6Subnet } from "../net/ipv6.js";

/**
 * What a host advertises in its lease value (flannel-compat §1.4). Field names follow the JSON
 * flanneld writes so the codec is a straight mapping.
 */
export interface LeaseAttrs {
  publicIP: string;
  publicIPv6: string | null;
  /** Absent for the udp backend: flanneld leaves BackendType out of the JSON. */
  backendType?: string;
  backendData?: unknown;
  backendV6Data?: unknown;
}

export interface Lease {
  subnet: Ipv4Subnet;
  /** The IPv6 subnet of a dual-stack lease (the key's `&fd66:0:0:6::-64` part). */
  ipv6Subnet?: Ipv6Subnet;
  attrs: LeaseAttrs;
  /** The full etcd key, e.g. /coreos.com/network/subnets/10.66.36.0-24. */
  key: string;
  /** etcd lease id (decimal string) the key is attached to; undefined for a reservation. */
  etcdLeaseId?: string;
  /** A key with no etcd lease: never expires and is never given a TTL. */
  reservation: boolean;
  /** When the key will expire; undefined for reservations or when not looked up. */
  expiresAt?: Date;
  modRevision?: string;
}

export type PeerEventKind = "added" | "changed" | "removed";

/** A change in another host's lease, as delivered to a backend. */
export interface PeerEvent {
  kind: PeerEventKind;
  lease: Lease;
  /** For "changed": the lease as it was before. */
  previous?: Lease;
}
