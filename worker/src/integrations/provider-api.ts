// Calls to a provider's API while processing an event (fetching a user or a
// subscription the event only names). Each call has a deadline, retries
// 5xx, 429, timeouts and connection errors with exponential backoff and full
// jitter (a Retry-After within the retry budget is honoured; a longer one is
// handed back so the event waits in a delay queue instead), a client-side
// rate limit from the provider's configuration, and goes through a circuit
// breaker per tenant and provider (the endpoint gate). Circuit changes are
// reported so health can show them.
import http from 'node:http';
import https from 'node:https';
import { exponentialDelay } from '../../../lib/backoff.js';
import {
  guardedLookup,
  lookupHost,
  outboundRefusal,
  type OutboundPolicy,
} from '../../../lib/outbound-address.js';
import type { CircuitBreaker } from '../circuit-breaker.js';
import { parseRetryAfter } from '../http-sender.js';
import type { CircuitStatus, ProviderSettings } from './integration-store.js';

/** Not worth retrying as is (a 4xx other than 408/429, a refused URL, no API configured). */
export class PermanentError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PermanentError';
  }
}

/** Worth retrying later; `retryAfterMs` when the provider said how long to wait. */
export class TransientError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'TransientError';
  }
}

/** The circuit is open: try again after `retryInMs`; not an attempt. */
export class CircuitOpenError extends Error {
  constructor(readonly retryInMs: number) {
    super('provider API circuit open');
    this.name = 'CircuitOpenError';
  }
}

export interface ProviderApiOptions {
  gate: CircuitBreaker;
  timeoutMs: number;
  /** Retries within one call, after the first try. */
  retries: number;
  baseDelayMs: number;
  /** A Retry-After up to this long is waited for in-process; longer ones end the call. */
  maxInlineWaitMs: number;
  allowLoopback: boolean;
  onCircuit?: (key: string, provider: string, status: CircuitStatus) => void;
}

interface Response {
  status: number;
  body: unknown;
  retryAfterMs?: number;
}

const maxResponseBytes = 1024 * 1024;

export class ProviderApi {
  private readonly agents = {
    http: new http.Agent({ keepAlive: true, maxSockets: 64 }),
    https: new https.Agent({ keepAlive: true, maxSockets: 64 }),
  };
  private readonly policy: OutboundPolicy;
  private readonly lookup: ReturnType<typeof guardedLookup>;
  private readonly failures = new Map<string, number>();
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly options: ProviderApiOptions) {
    this.policy = { allowPrivate: options.allowLoopback, resolveHost: lookupHost };
    this.lookup = guardedLookup(this.policy);
  }

  /**
   * GETs `path` under the provider's API base URL and returns the `data` of a
   * 2xx answer, or undefined for 404. Throws PermanentError, TransientError or
   * CircuitOpenError.
   */
  async get(key: string, settings: ProviderSettings, path: string): Promise<unknown> {
    if (!settings.apiBaseUrl) throw new PermanentError(`${settings.provider} has no api_base_url configured`);
    const url = new URL(`${settings.apiBaseUrl.replace(/\/$/, '')}${path}`);
    const refusal = await outboundRefusal(url, this.policy);
    if (refusal) throw new PermanentError(`provider API refused: ${refusal.message}`, { cause: refusal });
    const { retries, baseDelayMs, maxInlineWaitMs } = this.options;
    let lastError = 'no attempt made';
    for (let attempt = 0; attempt <= retries; attempt++) {
      await this.takeToken(key, settings);
      const decision = await this.options.gate.acquire(key);
      if (!decision.admitted) throw new CircuitOpenError(decision.retryInMs);
      let response: Response;
      try {
        response = await this.request(url, settings.credentials);
      } catch (error) {
        lastError = error instanceof Error ? error.message : String(error);
        decision.release('failure');
        this.report(key, settings.provider, lastError);
        await sleep(backoff(baseDelayMs, attempt));
        continue;
      }
      const { status } = response;
      if (status >= 200 && status < 300) {
        decision.release('success');
        this.report(key, settings.provider, undefined);
        return (response.body as { data?: unknown } | undefined)?.data ?? response.body;
      }
      if (status === 404) {
        decision.release('success');
        this.report(key, settings.provider, undefined);
        return undefined;
      }
      lastError = `provider API answered ${status} for GET ${url.pathname}`;
      if (status !== 408 && status !== 429 && status < 500) {
        decision.release('neutral');
        throw new PermanentError(lastError);
      }
      decision.release('failure');
      this.report(key, settings.provider, lastError);
      if (response.retryAfterMs !== undefined && response.retryAfterMs > maxInlineWaitMs) {
        throw new TransientError(lastError, response.retryAfterMs);
      }
      await sleep(Math.max(response.retryAfterMs ?? 0, backoff(baseDelayMs, attempt)));
    }
    throw new TransientError(lastError);
  }

  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  private report(key: string, provider: string, error: string | undefined): void {
    const before = this.failures.get(key) ?? 0;
    const after = error === undefined ? 0 : before + 1;
    this.failures.set(key, after);
    // Successes after a clean streak change nothing worth writing.
    if (error === undefined && before === 0) return;
    const state = this.options.gate.circuit(key);
    this.options.onCircuit?.(key, provider, {
      state,
      openUntil: state === 'closed' ? null : new Date(Date.now() + this.options.gate.remainingMs(key)),
      consecutiveFailures: after,
      lastError: error ?? null,
    });
  }

  /** A token bucket per key from rate_limit: requests_per_minute, burst_limit. */
  private async takeToken(key: string, settings: ProviderSettings): Promise<void> {
    const perMinute = settings.rateLimit.requests_per_minute;
    if (!perMinute) return;
    const burst = settings.rateLimit.burst_limit ?? Math.max(1, Math.ceil(perMinute / 6));
    const perMs = perMinute / 60_000;
    for (;;) {
      const now = Date.now();
      const bucket = this.buckets.get(key) ?? { tokens: burst, at: now };
      bucket.tokens = Math.min(burst, bucket.tokens + (now - bucket.at) * perMs);
      bucket.at = now;
      this.buckets.set(key, bucket);
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return;
      }
      const waitMs = Math.ceil((1 - bucket.tokens) / perMs);
      if (waitMs > this.options.maxInlineWaitMs) {
        throw new TransientError('provider API rate limit reached', waitMs);
      }
      await sleep(waitMs);
    }
  }

  private request(url: URL, credentials: Record<string, string> | null): Promise<Response> {
    const transport = url.protocol === 'https:' ? https : http;
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'Tenantry-Sync/1' };
    if (credentials?.api_key) headers['x-api-key'] = credentials.api_key;
    if (credentials?.token) headers.authorization = `Bearer ${credentials.token}`;
    return new Promise<Response>((resolve, reject) => {
      let settled = false;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        fn();
      };
      const request = transport.get(
        url,
        {
          agent: url.protocol === 'https:' ? this.agents.https : this.agents.http,
          lookup: this.lookup as never,
          headers,
        },
        (response) => {
          const chunks: Buffer[] = [];
          let size = 0;
          response.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > maxResponseBytes) response.destroy(new Error('provider API response too large'));
            else chunks.push(chunk);
          });
          response.on('error', (error) => settle(() => reject(error)));
          response.on('end', () =>
            settle(() => {
              let body: unknown;
              try {
                body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
              } catch {
                body = undefined;
              }
              const retryAfterMs = parseRetryAfter(response.headers['retry-after']);
              resolve({
                status: response.statusCode ?? 0,
                body,
                ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
              });
            }),
          );
        },
      );
      const timer = setTimeout(() => {
        settle(() => reject(new Error(`provider API timed out after ${this.options.timeoutMs} ms`)));
        request.destroy();
      }, this.options.timeoutMs);
      request.on('error', (error: NodeJS.ErrnoException) =>
        settle(() => reject(new Error(error.code ? `${error.code}: ${error.message}` : error.message))),
      );
    });
  }
}

/** Full jitter: a random wait up to base × 2^attempt (and never zero). */
function backoff(baseMs: number, attempt: number): number {
  return Math.round(exponentialDelay(attempt, { initialMs: baseMs, jitter: [0, 1] })) + 1;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
