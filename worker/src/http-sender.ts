// One signed POST to an endpoint, with a hard deadline. Plain node:http(s) so
// the connection goes through the guarded lookup (no private addresses unless
// allowed) and no redirect is ever followed.
import http from 'node:http';
import https from 'node:https';
import {
  guardedLookup,
  lookupHost,
  OutboundRefused,
  outboundRefusal,
  type OutboundPolicy,
} from '../../lib/outbound-address.js';

export interface SendResult {
  /** The HTTP status, when a response arrived. */
  status?: number;
  /** Milliseconds the endpoint asked us to wait (Retry-After), if any. */
  retryAfterMs?: number;
  /** Why the attempt failed without a response, or a short description of a bad one. */
  error?: string;
  /** The request may never succeed as configured (a refused URL): do not retry. */
  permanent?: boolean;
  /** Why the URL was refused, with the addresses it resolved to: for the log, never for the tenant. */
  refusal?: OutboundRefused;
  durationMs: number;
}

export interface HttpSenderOptions {
  timeoutMs: number;
  allowLoopback: boolean;
  userAgent?: string;
}

const maxResponseBytes = 64 * 1024;

export class HttpSender {
  private readonly agents: { http: http.Agent; https: https.Agent };
  private readonly policy: OutboundPolicy;
  private readonly lookup: ReturnType<typeof guardedLookup>;

  constructor(private readonly options: HttpSenderOptions) {
    this.agents = {
      http: new http.Agent({ keepAlive: true, maxSockets: 256 }),
      https: new https.Agent({ keepAlive: true, maxSockets: 256 }),
    };
    this.policy = { allowPrivate: options.allowLoopback, resolveHost: lookupHost };
    this.lookup = guardedLookup(this.policy);
  }

  async post(url: string, headers: Record<string, string>, body: string): Promise<SendResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return { error: 'the endpoint URL is not a URL', permanent: true, durationMs: 0 };
    }
    const refusal = await outboundRefusal(parsed, this.policy);
    if (refusal) return refused(refusal, elapsed());
    const transport = parsed.protocol === 'https:' ? https : http;
    return new Promise<SendResult>((resolve) => {
      let settled = false;
      const finish = (result: Omit<SendResult, 'durationMs'>) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ ...result, durationMs: elapsed() });
      };
      const request = transport.request(
        parsed,
        {
          method: 'POST',
          agent: parsed.protocol === 'https:' ? this.agents.https : this.agents.http,
          lookup: this.lookup as never,
          headers: {
            ...headers,
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            'user-agent': this.options.userAgent ?? 'Tenantry-Webhooks/1',
          },
        },
        (response) => {
          let received = 0;
          response.on('data', (chunk: Buffer) => {
            received += chunk.length;
            // The body is not stored; reading it lets the socket be reused.
            if (received > maxResponseBytes) response.destroy();
          });
          const done = () => {
            const status = response.statusCode ?? 0;
            const retryAfterMs = parseRetryAfter(response.headers['retry-after']);
            finish({
              status,
              ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
              ...(status >= 200 && status < 300 ? {} : { error: `HTTP ${status}` }),
            });
          };
          response.on('end', done);
          response.on('close', done);
          response.on('error', done);
        },
      );
      const timer = setTimeout(() => {
        finish({ error: `timed out after ${this.options.timeoutMs} ms` });
        request.destroy();
      }, this.options.timeoutMs);
      request.on('error', (error: NodeJS.ErrnoException) => {
        // Refused at connect time: the name now resolves somewhere it must not (DNS rebinding).
        if (error instanceof OutboundRefused) return finish(refused(error));
        finish({ error: error.code ? `${error.code}: ${error.message}` : error.message });
      });
      request.end(body);
    });
  }

  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }
}

/**
 * A refused URL's result. The error is stored as an attempt that tenants read
 * through the API, so it carries the safe message; `refusal` keeps the
 * resolved addresses for the log.
 */
function refused(refusal: OutboundRefused, durationMs = 0): SendResult {
  return { error: `refused: ${refusal.message}`, refusal, permanent: true, durationMs };
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date; undefined when absent or unusable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return undefined;
  if (/^\d+$/.test(text.trim())) return Number(text.trim()) * 1000;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}
