import { expect } from 'chai';
import {
  startHealthServer,
  startMetricsServer,
  type HealthServer,
  type MetricsServer,
} from '../../../operator/src/runtime/health-server.js';
import {
  createOperatorMetrics,
  setTenantPhaseCounts,
  workQueueMetricsHooks,
  type OperatorMetrics,
} from '../../../operator/src/runtime/metrics.js';

describe('health and metrics servers', () => {
  let server: HealthServer;
  let scrape: MetricsServer;
  let metrics: OperatorMetrics;
  let ready: () => boolean | Promise<boolean>;
  const url = (path: string) => `http://127.0.0.1:${server.port}${path}`;
  const metricsUrl = (path: string) => `http://127.0.0.1:${scrape.port}${path}`;

  beforeEach(async () => {
    metrics = createOperatorMetrics();
    ready = () => false;
    server = await startHealthServer({ isReady: () => ready(), host: '127.0.0.1', port: 0 });
    scrape = await startMetricsServer({ registry: metrics.registry, host: '127.0.0.1', port: 0 });
  });

  afterEach(async () => {
    await server.close();
    await scrape.close();
  });

  it('listens on the configured host and a free port', () => {
    expect(server.host).to.equal('127.0.0.1');
    expect(server.port).to.be.greaterThan(0);
  });

  it('answers /healthz while the process is alive, whatever readiness says', async () => {
    const response = await fetch(url('/healthz'));
    expect(response.status).to.equal(200);
    expect(await response.text()).to.equal('ok\n');
  });

  it('answers /readyz from the callback, treating a failure as not ready', async () => {
    expect((await fetch(url('/readyz'))).status).to.equal(503);
    ready = () => Promise.resolve(true);
    expect((await fetch(url('/readyz'))).status).to.equal(200);
    ready = () => {
      throw new Error('cache not synced');
    };
    expect((await fetch(url('/readyz'))).status).to.equal(503);
    ready = () => Promise.reject(new Error('cache not synced'));
    const response = await fetch(url('/readyz'));
    expect(response.status).to.equal(503);
    expect(await response.text()).to.equal('not ready\n');
  });

  it('serves the operator metrics and process metrics in Prometheus text format', async () => {
    const hooks = workQueueMetricsHooks(metrics);
    hooks.onProcessed?.({ key: 'ns/a', outcome: 'success', durationMs: 20 });
    hooks.onProcessed?.({ key: 'ns/a', outcome: 'error', durationMs: 5 });
    hooks.onFailed?.({ key: 'ns/a', error: new Error('x'), failures: 1, retryInMs: 100 });
    hooks.onDepthChange?.(7);
    setTenantPhaseCounts(metrics, { Ready: 3, Provisioning: 1 });
    setTenantPhaseCounts(metrics, { Ready: 4 });

    const response = await fetch(metricsUrl('/metrics'));
    expect(response.status).to.equal(200);
    expect(response.headers.get('content-type')).to.equal(metrics.registry.contentType);
    const body = await response.text();
    expect(body).to.include('tenantry_operator_reconcile_total{result="success"} 1');
    expect(body).to.include('tenantry_operator_reconcile_total{result="error"} 1');
    expect(body).to.include('tenantry_operator_reconcile_errors_total 1');
    expect(body).to.include(
      'tenantry_operator_reconcile_duration_seconds_bucket{le="0.025",result="success"} 1',
    );
    expect(body).to.include('tenantry_operator_reconcile_duration_seconds_count{result="error"} 1');
    expect(body).to.include('tenantry_operator_workqueue_depth 7');
    expect(body).to.include('tenantry_operator_tenants{phase="Ready"} 4');
    expect(body).not.to.include('phase="Provisioning"');
    expect(body).to.match(/^tenantry_operator_process_cpu_user_seconds_total \d/m);
    expect(body).to.match(/^tenantry_operator_nodejs_heap_size_used_bytes \d/m);
  });

  it('keeps each registry separate', async () => {
    const other = createOperatorMetrics({ defaultMetrics: false });
    other.reconcileErrors.inc(5);
    const body = await (await fetch(metricsUrl('/metrics'))).text();
    expect(body).to.include('tenantry_operator_reconcile_errors_total 0');
    expect(await other.registry.metrics()).to.include('tenantry_operator_reconcile_errors_total 5');
  });

  it('serves the metrics on their own port only, and the probes on theirs', async () => {
    expect(scrape.port).to.not.equal(server.port);
    expect((await fetch(url('/metrics'))).status).to.equal(404);
    expect((await fetch(metricsUrl('/healthz'))).status).to.equal(404);
    expect((await fetch(metricsUrl('/readyz'))).status).to.equal(404);
    expect((await fetch(metricsUrl('/metrics'), { method: 'POST' })).status).to.equal(405);
  });

  it('answers 404 for unknown paths and 405 for other methods', async () => {
    expect((await fetch(url('/nope'))).status).to.equal(404);
    const post = await fetch(url('/healthz'), { method: 'POST' });
    expect(post.status).to.equal(405);
    expect(post.headers.get('allow')).to.equal('GET, HEAD');
  });

  it('close() stops listening even with a keep-alive connection open', async () => {
    const response = await fetch(url('/healthz'), { headers: { connection: 'keep-alive' } });
    await response.text();
    const started = Date.now();
    await server.close();
    expect(Date.now() - started).to.be.below(2_000);
    let refused = false;
    try {
      await fetch(url('/healthz'));
    } catch {
      refused = true;
    }
    expect(refused, 'the server still answered after close()').to.be.true;
  });
});
