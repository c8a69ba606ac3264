// Which IP addresses a server-side request to a tenant-supplied URL may reach:
// identity providers (SSO) and webhook endpoints. Tenants choose these URLs, so
// without this check the platform could be pointed at cloud metadata services,
// the cluster network or itself.
import { lookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
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
  /** Used both to check a URL and, through `guardedLookup`, to connect. */
  resolveHost: ResolveHost;
}

/**
 * A refused server-side request. The message is safe to show whoever chose the
 * URL; `detail` names the addresses a host resolved to, which tell an outsider
 * about the internal network, so it belongs in the server log only (pino's
 * error serializer writes it).
 */
export class OutboundRefused extends Error {
  readonly code = 'EADDRREFUSED';

  constructor(
    message: string,
    readonly detail: string = message,
  ) {
    super(message);
    this.name = 'OutboundRefused';
  }
}

/**
 * Why a server-side request to `url` must not be made, or undefined when it
 * may. Decided before any connection: literal addresses are checked as they
 * are, host names by every address they resolve to. Connecting must still go
 * through `guardedLookup` (or `guardedFetch`), or the name can be rebound.
 */
export async function outboundRefusal(
  url: URL,
  policy: OutboundPolicy,
): Promise<OutboundRefused | undefined> {
  if (url.protocol !== 'https:' && !(policy.allowPrivate && url.protocol === 'http:')) {
    return new OutboundRefused(`${url.protocol} is not allowed, use https`);
  }
  // Credentials in the URL would be sent to whoever the host turns out to be.
  if (url.username || url.password) return new OutboundRefused('URLs with credentials are not allowed');
  if (policy.allowPrivate) return undefined;
  // WHATWG URL parsing has already normalised IPv4 forms such as 0x7f.1 to dotted quads.
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (isIP(host) !== 0) {
    return isPublicAddress(host) ? undefined : new OutboundRefused(`${host} is not a public address`);
  }
  let addresses: string[];
  try {
    addresses = await policy.resolveHost(host);
  } catch {
    return new OutboundRefused(`${host} does not resolve`);
  }
  return addressRefusal(host, addresses);
}

function addressRefusal(host: string, addresses: string[]): OutboundRefused | undefined {
  if (addresses.length === 0) return new OutboundRefused(`${host} does not resolve`);
  const blocked = addresses.filter((address) => !isPublicAddress(address));
  if (blocked.length === 0) return undefined;
  return new OutboundRefused(
    `${host} resolves to a non-public address`,
    `${host} resolves to non-public address ${blocked.join(', ')}`,
  );
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
 * connect time (DNS rebinding). The connection goes to an address this lookup
 * checked, never to one from a later resolution.
 */
export function guardedLookup(policy: OutboundPolicy) {
  return (hostname: string, options: { all?: boolean; family?: number }, callback: LookupCallback): void => {
    policy.resolveHost(hostname).then(
      (addresses) => {
        const family = options.family === 4 || options.family === 6 ? options.family : 0;
        const entries = addresses
          .map((address) => ({ address, family: isIP(address) }))
          .filter((entry) => entry.family !== 0 && (family === 0 || entry.family === family));
        const refusal = policy.allowPrivate
          ? entries.length === 0
            ? new OutboundRefused(`${hostname} does not resolve`)
            : undefined
          : addressRefusal(
              hostname,
              entries.map((entry) => entry.address),
            );
        if (refusal) {
          callback(refusal, '');
          return;
        }
        if (options.all) callback(null, entries);
        else callback(null, entries[0]?.address ?? '', entries[0]?.family);
      },
      (error: NodeJS.ErrnoException) => callback(error, ''),
    );
  };
}

/** What `guardedFetch` sends; the subset of RequestInit that SSO clients use. */
export interface GuardedRequestInit {
  method?: string;
  // Spelled through Headers: the image build compiles with the node types only, which have no global HeadersInit.
  headers?: ConstructorParameters<typeof Headers>[0];
  body?: string | URLSearchParams | Uint8Array | ArrayBuffer | null;
  signal?: AbortSignal | null;
}

export interface GuardedFetchOptions {
  /** A larger response body is an error; default 1 MiB. */
  maxResponseBytes?: number;
}

/**
 * A fetch for tenant-chosen URLs: the URL is checked, and the connection is
 * made through `guardedLookup`, so a name rebound between the two cannot
 * reach a private address. Redirects are returned, never followed (their
 * target would escape the check). The body is read into memory, up to a cap.
 */
export function guardedFetch(policy: OutboundPolicy, options: GuardedFetchOptions = {}) {
  const lookup = guardedLookup(policy);
  const maxResponseBytes = options.maxResponseBytes ?? 1024 * 1024;
  return async (input: string | URL, init: GuardedRequestInit = {}): Promise<Response> => {
    const url = new URL(input);
    const refusal = await outboundRefusal(url, policy);
    if (refusal) throw refusal;
    const headers = new Headers(init.headers);
    const body = requestBody(init.body, headers);
    init.signal?.throwIfAborted();
    const transport = url.protocol === 'https:' ? https : http;
    return new Promise<Response>((resolve, reject) => {
      const request = transport.request(
        url,
        {
          method: init.method ?? 'GET',
          headers: Object.fromEntries(headers),
          // A fresh connection each time: a pooled one could predate a change of policy.
          agent: false,
          lookup: lookup as never,
          ...(init.signal ? { signal: init.signal } : {}),
        },
        (response) => {
          const chunks: Buffer[] = [];
          let size = 0;
          response.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > maxResponseBytes) {
              response.destroy(
                new Error(`the response from ${url.host} is larger than ${maxResponseBytes} bytes`),
              );
            } else chunks.push(chunk);
          });
          response.on('error', reject);
          response.on('end', () => {
            const status = response.statusCode ?? 0;
            const answer = new Headers();
            for (const [name, value] of Object.entries(response.headers)) {
              for (const item of Array.isArray(value) ? value : [value ?? '']) answer.append(name, item);
            }
            const nullBody = status === 204 || status === 304 || init.method === 'HEAD';
            try {
              resolve(
                new Response(nullBody ? null : Buffer.concat(chunks), {
                  status,
                  statusText: response.statusMessage ?? '',
                  headers: answer,
                }),
              );
            } catch (error) {
              reject(error instanceof Error ? error : new Error(String(error)));
            }
          });
        },
      );
      request.on('error', reject);
      request.end(body);
    });
  };
}

function requestBody(body: GuardedRequestInit['body'], headers: Headers): string | Buffer | undefined {
  if (body === undefined || body === null) return undefined;
  if (body instanceof URLSearchParams) {
    if (!headers.has('content-type'))
      headers.set('content-type', 'application/x-www-form-urlencoded;charset=UTF-8');
    return body.toString();
  }
  if (typeof body === 'string') return body;
  return Buffer.from(body instanceof ArrayBuffer ? new Uint8Array(body) : body);
}
