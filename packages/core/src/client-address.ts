import type { Subject } from './subject.js';

/**
 * Bits of an IPv6 address that name one client. One customer is usually given a /56 (or a
 * /48 or /64) and can use every address in it, so keying by the full address would let one
 * client take a fresh quota per address; express-rate-limit masks to /56 by default too.
 */
export const DEFAULT_IPV6_SUBNET_BITS = 56;

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HEX_GROUP = /^[0-9a-f]{1,4}$/i;

/**
 * The key that identifies the client at `address`: an IPv4 address as it is, an IPv6 address
 * masked to its /`subnetBits` network in CIDR notation (`2001:db8:abcd:1200::/56`). An
 * IPv4-mapped IPv6 address (`::ffff:203.0.113.7`, what a dual-stack Node server reports for
 * an IPv4 client) is keyed as the IPv4 address. Anything else (a Unix socket path) is
 * returned unchanged.
 *
 * @param subnetBits - prefix length kept of an IPv6 address, 1 to 128. Defaults to `56`.
 * @example
 * clientAddressKey('2001:db8:abcd:12ff:1:2:3:4'); // '2001:db8:abcd:1200::/56'
 */
export function clientAddressKey(
  address: string,
  subnetBits: number = DEFAULT_IPV6_SUBNET_BITS,
): string {
  if (IPV4.test(address)) return address;
  const groups = parseIpv6(address);
  if (groups === undefined) return address;
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0) {
    if (groups[4] === 0 && groups[5] === 0xffff) {
      const [high, low] = [groups[6]!, groups[7]!];
      return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
    }
  }
  for (let i = 0; i < 8; i++) {
    const keep = Math.min(16, Math.max(0, subnetBits - i * 16));
    groups[i] = groups[i]! & (keep === 0 ? 0 : (0xffff << (16 - keep)) & 0xffff);
  }
  return `${formatIpv6(groups)}/${subnetBits}`;
}

/**
 * The subject of an anonymous caller: `{ userId: 'ip:<key>' }` with the key of
 * {@link clientAddressKey}. The `ip:` prefix keeps address keys apart from real user ids.
 *
 * Behind a proxy or a load balancer the socket's address is the proxy's, and every client
 * would share one quota: tell the framework which proxies to trust (Express `trust proxy`)
 * or identify callers yourself. Never key by a header the client can set.
 */
export function addressSubject(address: string): Subject {
  return { userId: `ip:${clientAddressKey(address)}` };
}

/** The eight 16-bit groups of an IPv6 address, or undefined when it is not one. */
function parseIpv6(input: string): number[] | undefined {
  let address = input;
  if (address.startsWith('[') && address.endsWith(']')) address = address.slice(1, -1);
  const zone = address.indexOf('%');
  if (zone !== -1) address = address.slice(0, zone);
  if (!address.includes(':')) return undefined;
  const lastColon = address.lastIndexOf(':');
  const last = address.slice(lastColon + 1);
  if (last.includes('.')) {
    // An embedded IPv4 address (`::ffff:192.0.2.1`) is the last two groups written in decimal.
    if (!IPV4.test(last)) return undefined;
    const octets = last.split('.').map(Number);
    const high = ((octets[0]! << 8) | octets[1]!).toString(16);
    const low = ((octets[2]! << 8) | octets[3]!).toString(16);
    address = `${address.slice(0, lastColon + 1)}${high}:${low}`;
  }
  const halves = address.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  const rest = halves.length === 2 && halves[1] !== '' ? halves[1]!.split(':') : [];
  for (const group of [...head, ...rest]) if (!HEX_GROUP.test(group)) return undefined;
  const explicit = head.length + rest.length;
  if (halves.length === 1 ? explicit !== 8 : explicit > 7) return undefined;
  const zeros = new Array<number>(8 - explicit).fill(0);
  return [
    ...head.map((g) => Number.parseInt(g, 16)),
    ...zeros,
    ...rest.map((g) => Number.parseInt(g, 16)),
  ];
}

/** RFC 5952 text: lower case, the longest run of two or more zero groups as `::`. */
function formatIpv6(groups: readonly number[]): string {
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}
