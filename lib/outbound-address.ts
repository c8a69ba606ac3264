// Which IP addresses a server-side request to a tenant-supplied URL may reach:
// identity providers (SSO) and webhook endpoints. Tenants choose these URLs, so
// without this check the platform could be pointed at cloud metadata services,
// the cluster network or itself.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

/** An IPv4 range as [first address, prefix length]. */
type V4Range = readonly [number, number];

// Ranges that are not globally reachable (IANA special-purpose registry), plus
// multicast and the reserved 240/4 block.
const nonPublicV4: readonly V4Range[] = [
  [v4('0.0.0.0'), 8], // "this network", includes the unspecified address
  [v4('10.0.0.0'), 8],
  [v4('100.64.0.0'), 10], // carrier-grade NAT
  [v4('127.0.0.0'), 8],
  [v4('169.254.0.0'), 16], // link-local, where cloud metadata services live
  [v4('172.16.0.0'), 12],
  [v4('192.0.0.0'), 24], // IETF protocol assignments
  [v4('192.0.2.0'), 24], // documentation
  [v4('192.88.99.0'), 24], // 6to4 relay anycast
  [v4('192.168.0.0'), 16],
  [v4('198.18.0.0'), 15], // benchmarking
  [v4('198.51.100.0'), 24], // documentation
  [v4('203.0.113.0'), 24], // documentation
  [v4('224.0.0.0'), 4], // multicast
  [v4('240.0.0.0'), 4], // reserved, includes broadcast
];

/**
 * True when `ip` (an IPv4 or IPv6 literal, without brackets) is a globally
 * reachable unicast address. Anything unparseable, private, loopback,
 * link-local, CGNAT, multicast, unspecified, reserved or documentation-only is
 * not public, and so is an IPv6 address that embeds such an IPv4 address.
 */
export function isPublicAddress(ip: string): boolean {
  switch (isIP(ip)) {
    case 4:
      return isPublicV4(v4(ip));
    case 6:
      return isPublicV6(ip);
    default:
      return false;
  }
}

function isPublicV4(address: number): boolean {
  return !nonPublicV4.some(([base, bits]) => inV4Range(address, base, bits));
}

function isPublicV6(ip: string): boolean {
  // A zone index only makes sense for link-scoped addresses.
  if (ip.includes('%')) return false;
  const groups = v6Groups(ip);
  if (!groups) return false;
  const g = (i: number): number => groups[i] ?? 0;
  const embeddedV4 = (g(6) * 0x10000 + g(7)) >>> 0;
  const zeroUpTo = (n: number): boolean => groups.slice(0, n).every((x) => x === 0);

  // ::ffff:0:0/96, IPv4-mapped: the socket talks IPv4 to the embedded address.
  if (zeroUpTo(5) && g(5) === 0xffff) return isPublicV4(embeddedV4);
  // ::/96 holds the unspecified and loopback addresses and deprecated IPv4-compatible ones.
  if (zeroUpTo(6)) return false;
  // 64:ff9b::/96, well-known NAT64 prefix: reaches the embedded IPv4 address.
  if (g(0) === 0x64 && g(1) === 0xff9b && groups.slice(2, 6).every((x) => x === 0)) {
    return isPublicV4(embeddedV4);
  }
  // 2002::/16, 6to4: the relay forwards to the IPv4 address in bits 16-47.
  if (g(0) === 0x2002) return isPublicV4((g(1) * 0x10000 + g(2)) >>> 0);
  // Only 2000::/3 is allocated for global unicast; the rest (ULA fc00::/7,
  // link-local fe80::/10, multicast ff00::/8, 64:ff9b:1::/48, 100::/64...) is not.
  if ((g(0) & 0xe000) !== 0x2000) return false;
  // 2001::/23: IETF protocol assignments, including Teredo (2001::/32).
  if (g(0) === 0x2001 && g(1) < 0x200) return false;
  // 2001:db8::/32 and 3fff::/20: documentation.
  if (g(0) === 0x2001 && g(1) === 0xdb8) return false;
  if (g(0) === 0x3fff && g(1) < 0x1000) return false;
  return true;
}

function v4(ip: string): number {
  const parts = ip.split('.').map(Number);
  return (((parts[0] ?? 0) << 24) | ((parts[1] ?? 0) << 16) | ((parts[2] ?? 0) << 8) | (parts[3] ?? 0)) >>> 0;
}

function inV4Range(address: number, base: number, bits: number): boolean {
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return (address & mask) >>> 0 === (base & mask) >>> 0;
}

/** The eight 16-bit groups of an IPv6 literal already accepted by `isIP`. */
function v6Groups(ip: string): number[] | undefined {
  let text = ip.toLowerCase();
  // A dotted IPv4 tail stands for the last two groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1]) {
    const tail = v4(dotted[1]);
    text = `${text.slice(0, -dotted[1].length)}${(tail >>> 16).toString(16)}:${(tail & 0xffff).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string | undefined): number[] =>
    part ? part.split(':').map((group) => Number.parseInt(group, 16)) : [];
  const head = parse(halves[0]);
  const tail = parse(halves[1]);
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  const groups = [...head, ...new Array<number>(Math.max(fill, 0)).fill(0), ...tail];
  if (groups.length !== 8 || groups.some((x) => !Number.isInteger(x) || x < 0 || x > 0xffff)) {
    return undefined;
  }
  return groups;
}

export type ResolveHost = (hostname: string) => Promise<string[]>;

/** Every address the system resolver gives for `hostname`, as the HTTP client would see them. */
export const lookupHost: ResolveHost = async (hostname) =>
  (await lookup(hostname, { all: true, verbatim: true })).map((entry) => entry.address);

export interface OutboundPolicy {
  /** Allows plain http and non-public addresses; for development and tests only. */
  allowPrivate: boolean;
  resolveHost: ResolveHost;
}

/**
 * Why a server-side request to `url` must not be made, or undefined when it
 * may. Decided before any connection: literal addresses are checked as they
 * are, host names by every address they resolve to.
 */
export async function outboundRefusal(url: URL, policy: OutboundPolicy): Promise<string | undefined> {
  if (url.protocol !== 'https:' && !(policy.allowPrivate && url.protocol === 'http:')) {
    return `${url.protocol} is not allowed, use https`;
  }
  // Credentials in the URL would be sent to whoever the host turns out to be.
  if (url.username || url.password) return 'URLs with credentials are not allowed';
  if (policy.allowPrivate) return undefined;
  // WHATWG URL parsing has already normalised IPv4 forms such as 0x7f.1 to dotted quads.
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  let addresses: string[];
  if (isIP(host) !== 0) {
    addresses = [host];
  } else {
    try {
      addresses = await policy.resolveHost(host);
    } catch {
      return `${host} does not resolve`;
    }
  }
  if (addresses.length === 0) return `${host} does not resolve`;
  const blocked = addresses.find((address) => !isPublicAddress(address));
  return blocked === undefined ? undefined : `${host} resolves to non-public address ${blocked}`;
}

type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | { address: string; family: number }[],
  family?: number,
) => void;

/**
 * A `lookup` for node:http(s) requests that refuses non-public addresses when
 * the connection is made. Checking the URL beforehand is not enough: a host
 * name can resolve to a public address at check time and to a private one at
 * connect time (DNS rebinding).
 */
export function guardedLookup(policy: Pick<OutboundPolicy, 'allowPrivate'>) {
  return (hostname: string, options: { all?: boolean; family?: number }, callback: LookupCallback): void => {
    lookup(hostname, { all: true, verbatim: true, family: options.family ?? 0 }).then(
      (entries) => {
        const blocked = entries.find((entry) => !policy.allowPrivate && !isPublicAddress(entry.address));
        if (entries.length === 0 || blocked) {
          const reason = blocked ? `non-public address ${blocked.address}` : 'no address';
          const error: NodeJS.ErrnoException = new Error(`${hostname} resolves to ${reason}`);
          error.code = 'EADDRREFUSED';
          callback(error, '');
          return;
        }
        if (options.all) callback(null, entries);
        else callback(null, entries[0]?.address ?? '', entries[0]?.family);
      },
      (error: NodeJS.ErrnoException) => callback(error, ''),
    );
  };
}
