// The three providers on loopback, for tests, benchmarks and `make dev`:
// user-service, payment-service and communication-service. It signs and sends
// events built from the sample payloads (provider-samples.json, taken from the
// project's reference sample data) the way a real provider would (Standard
// Webhooks), and serves the providers' APIs (GET /<provider>/users/{id},
// /<provider>/subscriptions/{id}) with controllable latency, 5xx answers,
// timeouts and 429 with Retry-After.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Provider } from '../../lib/integrations/catalog.js';
import { newMessageId, signWebhook } from '../../lib/webhooks/standard-webhooks.js';

export type SampleEvent = {
  event_type: string;
  event_id?: string;
  timestamp?: string;
  organization_id?: string;
  data: Record<string, unknown>;
  metadata?: Record<string, unknown>;
};

interface Samples {
  webhook_events: Record<
    'user_service_events' | 'payment_service_events' | 'communication_service_events',
    SampleEvent[]
  >;
  external_api_responses: {
    user_service_api: { get_user: { success_response: { data: Record<string, unknown> } } };
    payment_service_api: { get_subscription: { success_response: { data: Record<string, unknown> } } };
  };
}

export const samples = JSON.parse(
  readFileSync(new URL('./provider-samples.json', import.meta.url), 'utf8'),
) as Samples;

/** The sample events of one provider, as in webhook_events.json (deep copies). */
export function sampleEvents(provider: Provider): SampleEvent[] {
  const key = `${provider.replace('-service', '')}_service_events` as keyof Samples['webhook_events'];
  return structuredClone(samples.webhook_events[key]);
}

/** How a provider's API behaves; each field applies to the next requests. */
export interface ApiBehaviour {
  /** Added before every answer. */
  latencyMs: number;
  /** Answer this many requests with 503 first. Infinity: always. */
  failures: number;
  /** Answer this many requests with 429 and `Retry-After: retryAfterSeconds`. */
  rateLimited: number;
  retryAfterSeconds: number;
  /** Never answer (the caller's deadline must end it). */
  hang: boolean;
}

const calm = (): ApiBehaviour => ({
  latencyMs: 0,
  failures: 0,
  rateLimited: 0,
  retryAfterSeconds: 1,
  hang: false,
});

export class ProviderSimulator {
  readonly behaviour: Record<Provider, ApiBehaviour> = {
    'user-service': calm(),
    'payment-service': calm(),
    'communication-service': calm(),
  };
  /** Every API request served, oldest first. */
  readonly requests: { provider: string; path: string; status: number; at: number }[] = [];
  /** Records the APIs serve, by id. Seeded from external_api_responses.json. */
  readonly users = new Map<string, Record<string, unknown>>();
  readonly subscriptions = new Map<string, Record<string, unknown>>();
  private server!: Server;
  private port = 0;

  static async start(): Promise<ProviderSimulator> {
    const simulator = new ProviderSimulator();
    await simulator.listen();
    return simulator;
  }

  private constructor() {
    const user = samples.external_api_responses.user_service_api.get_user.success_response.data;
    this.users.set(String(user.user_id), structuredClone(user));
    const sub = samples.external_api_responses.payment_service_api.get_subscription.success_response.data;
    this.subscriptions.set(String(sub.subscription_id), structuredClone(sub));
  }

  /** The API base URL to configure for `provider`. */
  apiBaseUrl(provider: Provider): string {
    return `http://127.0.0.1:${this.port}/${provider}`;
  }

  reset(): void {
    for (const provider of Object.keys(this.behaviour) as Provider[]) this.behaviour[provider] = calm();
    this.requests.length = 0;
  }

  /** Standard Webhooks headers for `body`, as the provider would send them. */
  static sign(secret: string, body: string, options: { id?: string; timestamp?: number } = {}) {
    return signWebhook(
      [secret],
      options.id ?? newMessageId(),
      options.timestamp ?? Math.floor(Date.now() / 1000),
      body,
    );
  }

  /** POSTs one event or a batch, signed with `secret`, to `url`. */
  static async send(
    url: string,
    secret: string,
    payload: unknown,
    options: { id?: string; timestamp?: number; headers?: Record<string, string> } = {},
  ): Promise<{ status: number; body: any }> {
    const body = typeof payload === 'string' ? payload : JSON.stringify(payload);
    const response = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...ProviderSimulator.sign(secret, body, options),
        ...options.headers,
      },
      body,
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON
    }
    return { status: response.status, body: parsed };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((ok) => this.server.close(ok));
  }

  private async listen(): Promise<void> {
    this.server = createServer((request, response) => {
      const match = /^\/([a-z-]+)\/(users|subscriptions)\/([^/?]+)$/.exec(request.url ?? '');
      const provider = match?.[1] as Provider | undefined;
      const behaviour = provider ? this.behaviour[provider] : undefined;
      const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        this.requests.push({ provider: provider ?? '?', path: request.url ?? '', status, at: Date.now() });
        response
          .writeHead(status, { 'content-type': 'application/json', ...headers })
          .end(JSON.stringify(body));
      };
      if (!match || !behaviour) return answer(404, { status: 'error', error_code: 'NOT_FOUND' });
      if (behaviour.hang) {
        this.requests.push({ provider: provider!, path: request.url ?? '', status: 0, at: Date.now() });
        return;
      }
      setTimeout(() => {
        if (behaviour.rateLimited > 0) {
          behaviour.rateLimited -= 1;
          return answer(
            429,
            { status: 'error', error_code: 'RATE_LIMITED' },
            { 'retry-after': String(behaviour.retryAfterSeconds) },
          );
        }
        if (behaviour.failures > 0) {
          behaviour.failures -= 1;
          return answer(503, { status: 'error', error_code: 'UNAVAILABLE' });
        }
        const id = decodeURIComponent(match[3]!);
        const record = (match[2] === 'users' ? this.users : this.subscriptions).get(id);
        if (!record) {
          return answer(404, {
            status: 'error',
            error_code: match[2] === 'users' ? 'USER_NOT_FOUND' : 'SUBSCRIPTION_NOT_FOUND',
            message: `${id} not found`,
          });
        }
        answer(200, { status: 'success', data: record });
      }, behaviour.latencyMs);
    });
    await new Promise<void>((ok) => this.server.listen(0, '127.0.0.1', ok));
    this.port = (this.server.address() as AddressInfo).port;
  }
}
