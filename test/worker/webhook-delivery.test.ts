import { expect } from 'chai';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import {
  eventTypeMatches,
  generateWebhookSecret,
  isWebhookSecret,
  newMessageId,
  signWebhook,
} from '../../lib/webhooks/standard-webhooks.js';
import { Batcher } from '../../lib/batcher.js';
import { loadWorkerConfig } from '../../worker/src/config.js';
import { CircuitBreaker } from '../../worker/src/circuit-breaker.js';
import { HttpSender, parseRetryAfter } from '../../worker/src/http-sender.js';
import { parseSchedule, RetrySchedule, standardSchedule } from '../../worker/src/schedule.js';
import { webhookTopology } from '../../worker/src/topology.js';
import { endpointStreaks, type AttemptRecord } from '../../worker/src/webhook-store.js';

describe('webhook delivery: pure parts', () => {
  describe('Standard Webhooks signing', () => {
    it('produces signatures the standardwebhooks package verifies, one per secret', () => {
      const [a, b] = [generateWebhookSecret(), generateWebhookSecret()];
      const id = newMessageId();
      const body = JSON.stringify({ type: 'user.created', data: { id: 1 } });
      const headers = signWebhook([a, b], id, Math.floor(Date.now() / 1000), body);
      expect(id).to.match(/^msg_[A-Za-z0-9]{26}$/);
      expect(new Webhook(a).verify(body, { ...headers })).to.deep.equal(JSON.parse(body));
      expect(new Webhook(b).verify(body, { ...headers })).to.deep.equal(JSON.parse(body));
      expect(() => new Webhook(a).verify(`${body} `, { ...headers })).to.throw();
      expect(() => signWebhook([], id, 1, body)).to.throw(/at least one secret/);
    });

    it('accepts only whsec_ secrets with enough key bytes', () => {
      expect(isWebhookSecret(generateWebhookSecret())).to.equal(true);
      expect(isWebhookSecret('whsec_c2hvcnQ=')).to.equal(false);
      expect(isWebhookSecret('sk_live_abc')).to.equal(false);
      expect(isWebhookSecret('whsec_not base64!')).to.equal(false);
    });

    it('matches event types exactly, by prefix wildcard, or all when empty', () => {
      expect(eventTypeMatches([], 'user.created')).to.equal(true);
      expect(eventTypeMatches(['user.*'], 'user.created')).to.equal(true);
      expect(eventTypeMatches(['user.*'], 'users.created')).to.equal(false);
      expect(eventTypeMatches(['user.created'], 'user.updated')).to.equal(false);
      expect(eventTypeMatches(['*'], 'anything')).to.equal(true);
    });
  });

  describe('retry schedule', () => {
    it('defaults to the Standard Webhooks schedule with one tier per distinct delay', () => {
      const schedule = new RetrySchedule(standardSchedule);
      expect(schedule.maxAttempts).to.equal(8);
      expect(schedule.tiers).to.deep.equal([5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000]);
      expect(schedule.tierBefore(2)).to.equal(5_000);
      expect(schedule.tierBefore(8)).to.equal(36_000_000);
    });

    it('picks the smallest tier at least as long as Retry-After, capped at the longest', () => {
      const schedule = new RetrySchedule(standardSchedule);
      expect(schedule.tierBefore(2, 60_000)).to.equal(300_000);
      expect(schedule.tierBefore(2, 1_000)).to.equal(5_000);
      expect(schedule.tierBefore(2, 99 * 3_600_000)).to.equal(36_000_000);
    });

    it('parses durations and rejects bad schedules', () => {
      expect(parseSchedule('0,250ms,5s,2m,1h')).to.deep.equal([0, 250, 5_000, 120_000, 3_600_000]);
      expect(() => parseSchedule('5s,10s')).to.throw(/starts with 0/);
      expect(() => parseSchedule('0,10s,5s')).to.throw(/must not decrease/);
      expect(() => parseSchedule('0,soon')).to.throw(/not a duration/);
    });

    it('keeps every queue name under the tenant prefix', () => {
      const t = webhookTopology('tenant.acme.', [5_000, 300_000]);
      const names = [t.workExchange, t.workQueue, t.retryExchange, t.parkedQueue, ...t.delayQueues.values()];
      for (const name of names) expect(name.startsWith('tenant.acme.')).to.equal(true);
      expect(() => webhookTopology('', [5_000])).to.throw(/invalid queue prefix/);
    });
  });

  describe('batching of database work', () => {
    /** A batcher whose batches wait for `release` and are recorded in `batches`. */
    function gatedBatcher(options: {
      maxSize: number;
      concurrency: number;
      failOn?: number;
      sizeOf?: (n: number) => number;
    }) {
      const batches: number[][] = [];
      const releases: (() => void)[] = [];
      const batcher = new Batcher<number, string>({
        maxSize: options.maxSize,
        concurrency: options.concurrency,
        ...(options.sizeOf ? { sizeOf: options.sizeOf } : {}),
        run: async (inputs) => {
          batches.push(inputs);
          await new Promise<void>((resolve) => releases.push(resolve));
          if (inputs.includes(options.failOn ?? -1)) throw new Error('batch failed');
          return inputs.map((n) => `#${n}`);
        },
      });
      const releaseAll = () => releases.splice(0).forEach((release) => release());
      return { batcher, batches, releaseAll };
    }
    const turn = () => new Promise((resolve) => setImmediate(resolve));

    it('runs the calls of one turn as one batch and answers each with its own result', async () => {
      const { batcher, batches, releaseAll } = gatedBatcher({ maxSize: 10, concurrency: 1 });
      const results = Promise.all([1, 2, 3].map((n) => batcher.add(n)));
      await turn();
      releaseAll();
      expect(await results).to.deep.equal(['#1', '#2', '#3']);
      expect(batches).to.deep.equal([[1, 2, 3]]);
    });

    it('gathers calls made while a batch runs into the next, up to the size limit', async () => {
      const { batcher, batches, releaseAll } = gatedBatcher({ maxSize: 2, concurrency: 1 });
      const first = batcher.add(1);
      await turn();
      const later = [2, 3, 4].map((n) => batcher.add(n));
      await turn();
      // Only one batch at a time: the others wait for it.
      expect(batches).to.deep.equal([[1]]);
      releaseAll();
      expect(await first).to.equal('#1');
      await turn();
      releaseAll();
      await turn();
      releaseAll();
      expect(await Promise.all(later)).to.deep.equal(['#2', '#3', '#4']);
      expect(batches).to.deep.equal([[1], [2, 3], [4]]);
    });

    it('counts a batch by sizeOf, and never splits an input larger than the limit', async () => {
      // Each input n weighs n: with a limit of 5, [2, 3] fit, 9 goes alone, [1, 4] fit.
      const { batcher, batches, releaseAll } = gatedBatcher({ maxSize: 5, concurrency: 1, sizeOf: (n) => n });
      const first = batcher.add(0);
      await turn();
      const later = [2, 3, 9, 1, 4].map((n) => batcher.add(n));
      for (let i = 0; i < 4; i++) {
        releaseAll();
        await turn();
      }
      expect(await first).to.equal('#0');
      expect(await Promise.all(later)).to.deep.equal(['#2', '#3', '#9', '#1', '#4']);
      expect(batches).to.deep.equal([[0], [2, 3], [9], [1, 4]]);
    });

    it('rejects every call of a failed batch and goes on with the next', async () => {
      const { batcher, batches, releaseAll } = gatedBatcher({ maxSize: 10, concurrency: 2, failOn: 2 });
      const failed = [1, 2].map((n) => batcher.add(n).catch((error: Error) => error.message));
      await turn();
      const next = batcher.add(3);
      await turn();
      // A second batch runs beside the first.
      expect(batches).to.deep.equal([[1, 2], [3]]);
      releaseAll();
      expect(await Promise.all(failed)).to.deep.equal(['batch failed', 'batch failed']);
      expect(await next).to.equal('#3');
    });

    it('folds a batch of attempts into each endpoint streak as if recorded one by one', () => {
      const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
      const attempt = (endpointId: string, succeeded: boolean, second: number, disableReason?: string) =>
        ({
          deliveryId: `d${second}`,
          endpointId,
          attempt: 1,
          startedAt: at(second),
          durationMs: 1,
          responseStatus: succeeded ? 200 : 500,
          error: undefined,
          succeeded,
          status: succeeded ? 'succeeded' : 'retrying',
          nextAttemptAt: undefined,
          disableAfterMs: 1000,
          ...(disableReason ? { disableReason } : {}),
        }) satisfies AttemptRecord;
      const streaks = endpointStreaks([
        attempt('b', false, 3),
        attempt('b', false, 1),
        attempt('a', false, 1),
        attempt('a', true, 2),
        attempt('a', false, 5),
        attempt('a', false, 4),
        attempt('c', false, 1, 'the endpoint answered 410 Gone'),
        attempt('c', true, 2),
        attempt('d', false, 1),
        attempt('d', true, 2),
      ]);
      expect(
        streaks.map(({ endpointId, reset, since, disableReason }) => ({
          endpointId,
          reset,
          since,
          disableReason,
        })),
      ).to.deep.equal([
        // A success ended the old streak; failures after it start a new one at their earliest.
        { endpointId: 'a', reset: true, since: at(4), disableReason: undefined },
        // Only failures: the streak goes on (or starts at the earliest of them).
        { endpointId: 'b', reset: false, since: at(1), disableReason: undefined },
        // A 410 disables even when a later attempt succeeded.
        { endpointId: 'c', reset: true, since: undefined, disableReason: 'the endpoint answered 410 Gone' },
        // Ended on a success: no streak.
        { endpointId: 'd', reset: true, since: undefined, disableReason: undefined },
      ]);
    });
  });

  describe('worker configuration', () => {
    const base = { TENANTRY_TENANT: 'acme', DATABASE_URL: 'postgres://a@b/c', AMQP_URL: 'amqp://x@y' };

    it('reads the operator Deployment variables with defaults', () => {
      const config = loadWorkerConfig(base);
      expect(config.queuePrefix).to.equal('tenant.acme.');
      expect(config.delivery.schedule).to.deep.equal([...standardSchedule]);
      expect(config.delivery.allowLoopback).to.equal(false);
      expect(config.http.port).to.equal(8081);
      expect(config.metrics).to.deep.equal({ host: '0.0.0.0', port: 9090 });
    });

    it('serves metrics on METRICS_PORT, apart from the probes', () => {
      expect(loadWorkerConfig({ ...base, METRICS_PORT: '0' }).metrics.port).to.equal(0);
      expect(() => loadWorkerConfig({ ...base, METRICS_PORT: '8081' })).to.throw(
        /METRICS_PORT: must differ from HTTP_PORT/,
      );
    });

    it('allows loopback targets under WEBHOOKS_ALLOW_LOOPBACK, and under the deprecated WEBHOOK_ALLOW_LOOPBACK with a warning', () => {
      const current = loadWorkerConfig({ ...base, WEBHOOKS_ALLOW_LOOPBACK: 'true' });
      expect(current.delivery.allowLoopback).to.equal(true);
      expect(current.integrations.api.allowLoopback).to.equal(true);
      expect(current.deprecations).to.deep.equal([]);

      const deprecated = loadWorkerConfig({ ...base, WEBHOOK_ALLOW_LOOPBACK: 'true' });
      expect(deprecated.delivery.allowLoopback).to.equal(true);
      expect(deprecated.integrations.api.allowLoopback).to.equal(true);
      expect(deprecated.deprecations).to.deep.equal([
        'WEBHOOK_ALLOW_LOOPBACK is deprecated and will be removed in the next release: set WEBHOOKS_ALLOW_LOOPBACK instead',
      ]);

      const both = loadWorkerConfig({
        ...base,
        WEBHOOKS_ALLOW_LOOPBACK: 'true',
        WEBHOOK_ALLOW_LOOPBACK: 'yes',
      });
      expect(both.delivery.allowLoopback).to.equal(true);
      expect(both.deprecations).to.have.length(1);
      expect(() =>
        loadWorkerConfig({ ...base, WEBHOOKS_ALLOW_LOOPBACK: 'false', WEBHOOK_ALLOW_LOOPBACK: 'true' }),
      ).to.throw(/WEBHOOK_ALLOW_LOOPBACK: disagrees with WEBHOOKS_ALLOW_LOOPBACK/);
      expect(loadWorkerConfig(base).deprecations).to.deep.equal([]);
    });

    it('names each bad variable', () => {
      expect(() => loadWorkerConfig({ ...base, DATABASE_URL: undefined })).to.throw(/DATABASE_URL/);
      expect(() => loadWorkerConfig({ ...base, WEBHOOK_RETRY_SCHEDULE: '1s' })).to.throw(
        /WEBHOOK_RETRY_SCHEDULE: a retry schedule starts with 0/,
      );
      expect(() => loadWorkerConfig({ ...base, WEBHOOK_TIMEOUT: '31m' })).to.throw(/WEBHOOK_TIMEOUT/);
      expect(() => loadWorkerConfig({ ...base, AMQP_QUEUE_PREFIX: 'tenant.acme' })).to.throw(
        /AMQP_QUEUE_PREFIX/,
      );
    });
  });

  describe('endpoint gate', () => {
    it('limits concurrency, queues up to maxHeld, defers beyond it', async () => {
      const gate = new CircuitBreaker({ concurrency: 1, maxHeld: 2, failureThreshold: 5, cooldownMs: 1000 });
      const first = await gate.acquire('e');
      expect(first.admitted).to.equal(true);
      let secondAdmitted = false;
      const second = gate.acquire('e').then((d) => {
        secondAdmitted = d.admitted;
        return d;
      });
      const third = await gate.acquire('e');
      expect(third).to.deep.include({ admitted: false, reason: 'endpoint concurrency limit reached' });
      // Another endpoint is not affected.
      expect((await gate.acquire('other')).admitted).to.equal(true);
      await Promise.resolve();
      expect(secondAdmitted).to.equal(false);
      if (first.admitted) first.release('success');
      expect((await second).admitted).to.equal(true);
    });

    it('opens after consecutive failures, probes after a growing cooldown, closes on success', async () => {
      let now = 0;
      const gate = new CircuitBreaker({
        concurrency: 5,
        maxHeld: 10,
        failureThreshold: 2,
        cooldownMs: 1000,
        now: () => now,
      });
      for (let i = 0; i < 2; i++) {
        const d = await gate.acquire('e');
        if (d.admitted) d.release('failure');
      }
      expect(gate.circuit('e')).to.equal('open');
      expect(await gate.acquire('e')).to.deep.include({
        admitted: false,
        reason: 'circuit open',
        retryInMs: 1000,
      });
      now = 1000;
      expect(gate.circuit('e')).to.equal('half-open');
      const probe = await gate.acquire('e');
      expect(probe.admitted).to.equal(true);
      expect((await gate.acquire('e')).admitted).to.equal(false);
      if (probe.admitted) probe.release('failure');
      // A failed probe doubles the cooldown.
      now = 2999;
      expect(gate.circuit('e')).to.equal('open');
      now = 3000;
      const again = await gate.acquire('e');
      if (again.admitted) again.release('success');
      expect(gate.circuit('e')).to.equal('closed');
    });
  });

  describe('HTTP sender', () => {
    it('reads Retry-After as seconds or an HTTP date', () => {
      expect(parseRetryAfter('120')).to.equal(120_000);
      expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).to.equal(6_000);
      expect(parseRetryAfter('soon')).to.equal(undefined);
      expect(parseRetryAfter(undefined)).to.equal(undefined);
    });

    it('refuses loopback and private targets unless loopback is allowed', async () => {
      let hits = 0;
      const server = createServer((_req, res) => {
        hits += 1;
        res.end();
      });
      await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
      const port = (server.address() as AddressInfo).port;
      const strict = new HttpSender({ timeoutMs: 1000, allowLoopback: false });
      const loose = new HttpSender({ timeoutMs: 1000, allowLoopback: true });
      try {
        for (const url of [
          `http://127.0.0.1:${port}/`,
          `https://localhost:${port}/`,
          'https://10.1.2.3/',
          'https://[::1]/',
        ]) {
          const result = await strict.post(url, {}, '{}');
          expect(result.permanent, url).to.equal(true);
          expect(result.error, url).to.match(/^refused: /);
        }
        // The error is stored as an attempt tenants can read: what localhost resolves to stays in the log.
        const named = await strict.post(`https://localhost:${port}/`, {}, '{}');
        expect(named.error).to.equal('refused: localhost resolves to a non-public address');
        expect(named.refusal?.detail).to.match(/127\.0\.0\.1|::1/);
        expect(hits).to.equal(0);
        expect((await loose.post(`http://127.0.0.1:${port}/`, {}, '{}')).status).to.equal(200);
        expect(hits).to.equal(1);
      } finally {
        strict.close();
        loose.close();
        server.closeAllConnections();
        await new Promise((ok) => server.close(ok));
      }
    });

    it('gives up on a silent endpoint at the timeout', async () => {
      const server = createServer(() => undefined);
      await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
      const sender = new HttpSender({ timeoutMs: 200, allowLoopback: true });
      try {
        const result = await sender.post(
          `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
          {},
          '{}',
        );
        expect(result.error).to.equal('timed out after 200 ms');
        expect(result.status).to.equal(undefined);
        expect(result.durationMs).to.be.within(190, 1000);
      } finally {
        sender.close();
        server.closeAllConnections();
        await new Promise((ok) => server.close(ok));
      }
    });
  });
});
