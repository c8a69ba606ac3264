import { expect } from 'chai';
import { createWorkerMetrics, type OutboxBacklog } from '../../../worker/src/metrics.js';

type Backlog = Record<'webhooks' | 'integrations', OutboxBacklog>;

describe('worker metrics', () => {
  let backlog: () => Promise<Backlog>;
  let reads: number;
  let metrics: ReturnType<typeof createWorkerMetrics>;
  const sample = (text: string, series: string) =>
    new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1];

  beforeEach(() => {
    reads = 0;
    metrics = createWorkerMetrics({
      relayed: { webhooks: () => 0, integrations: () => 0 },
      outboxBacklog: () => {
        reads++;
        return backlog();
      },
      ready: () => true,
    });
    backlog = () =>
      Promise.resolve({
        webhooks: { pending: 3, oldestAgeSeconds: 42.5 },
        integrations: { pending: 0, oldestAgeSeconds: 0 },
      });
  });

  it('counts a parked delivery once, on the attempt after which none follows', async () => {
    const attempt = (status: 'succeeded' | 'retrying' | 'failed', code?: number) =>
      metrics.onAttempt({ deliveryId: 'd', attempt: 1, result: { status: code, durationMs: 20 }, status });
    attempt('retrying', 500);
    attempt('retrying');
    attempt('failed', 410);
    attempt('succeeded', 204);
    const text = await metrics.registry.metrics();
    expect(sample(text, 'tenantry_worker_webhook_deliveries_parked_total')).to.equal('1');
    expect(sample(text, 'tenantry_worker_webhook_attempts_total{outcome="server_error"}')).to.equal('1');
    expect(sample(text, 'tenantry_worker_webhook_attempts_total{outcome="no_response"}')).to.equal('1');
    expect(sample(text, 'tenantry_worker_webhook_attempts_total{outcome="client_error"}')).to.equal('1');
  });

  it('reads the outbox backlog per relay once per scrape, for both gauges', async () => {
    const text = await metrics.registry.metrics();
    expect(sample(text, 'tenantry_worker_outbox_pending{relay="webhooks"}')).to.equal('3');
    expect(sample(text, 'tenantry_worker_outbox_pending{relay="integrations"}')).to.equal('0');
    expect(sample(text, 'tenantry_worker_outbox_oldest_pending_age_seconds{relay="webhooks"}')).to.equal(
      '42.5',
    );
    expect(reads).to.equal(1);
  });

  it('keeps the last backlog and still answers the scrape when the database does not', async () => {
    await metrics.registry.metrics();
    await new Promise((ok) => setTimeout(ok, 1100));
    backlog = () => Promise.reject(new Error('connection refused'));
    const text = await metrics.registry.metrics();
    expect(reads).to.equal(2);
    expect(sample(text, 'tenantry_worker_outbox_pending{relay="webhooks"}')).to.equal('3');
    expect(sample(text, 'tenantry_worker_ready')).to.equal('1');
  });
});
