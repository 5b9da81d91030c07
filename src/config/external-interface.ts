/** The underlay interface a host uses to reach its peers (flannel-compat §10). */
export interface ExternalInterface {
  /** Interface name, e.g. eth0. */
  name: string;
  /** Kernel interface index. */
  index: number;
  /**
   * The interface's own IPv4 address: sockets bind to it, vxlan uses it as local. Absent only in
   * an IPv6-only network (EnableIPv4: false) on an interface without IPv4.
   */
  address?: string;
  /** What the lease advertises and peers send to: --public-ip, or `address` (absent with it). */
  publicIP?: string;
  mtu: number;
  /**
   * The interface's own IPv6 address (dual-stack networks): the v6 vxlan device's local, the
   * source of IPv6 underlay sockets. Undefined when the network is IPv4-only.
   */
  addressV6?: string;
  /** What the lease advertises as PublicIPv6: --public-ipv6, or `addressV6`. */
  publicIPv6?: string;
}
