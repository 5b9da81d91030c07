import type { Ipv4Subnet } from "../net/ipv4.js";
import type { Ipv6Subnet } from "../net/ipv6.js";

/**
 * What a host advertises in its lease value (flannel-compat §1.4). Field names follow the JSON
 * flanneld writes so the codec is a straight mapping.
 */
export interface LeaseAttrs {
  /** "0.0.0.0" in an IPv6-only lease, as flanneld writes its zero IPv4 (NO_PUBLIC_IP). */
  publicIP: string;
  publicIPv6: string | null;
  /** Absent for the udp backend: flanneld leaves BackendType out of the JSON. */
  backendType?: string;
  backendData?: unknown;
  backendV6Data?: unknown;
}

/**
 * The subnets a lease holds: IPv4 (`10.66.36.0-24`), both (`10.66.52.0-24&fd66:0:0:6::-64`), or
 * IPv6 only (EnableIPv4: false; flanneld names it `0.0.0.0-0&fd66:0:0:6::-64`). A union, so every
 * reader of `subnet` handles the IPv6-only case and no lease holds neither family.
 */
export type LeaseSubnets =
  | {
      subnet: Ipv4Subnet;
      /** The IPv6 subnet of a dual-stack lease (the key's `&fd66:0:0:6::-64` part). */
      ipv6Subnet?: Ipv6Subnet;
    }
  | { subnet?: undefined; ipv6Subnet: Ipv6Subnet };

export type Lease = LeaseSubnets & LeaseRecord;

/** What a lease is besides its subnets. */
export interface LeaseRecord {
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
