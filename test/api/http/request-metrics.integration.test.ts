// The API's metrics: served on their own listener, never on the public port,
// and request latency labelled by route pattern, not by raw path.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { startTestApi, type TestApi } from '../../harness/api-server.js';
import { startTestPlatform, type TestPlatform } from '../../harness/platform.js';
import { readyTenants, seedUser, signIn } from '../../harness/seeded-tenants.js';

/** Observations of the request histogram per `method route status`, from its _count series. */
function requestCounts(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of text.matchAll(/^tenantry_api_http_request_duration_seconds_count\{([^}]*)\} (\d+)$/gm)) {
    const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    counts.set(`${labels.method} ${labels.route} ${labels.status}`, Number(m[2]));
  }
  return counts;
}

describe('API metrics port and request metrics', function () {
  this.timeout(180_000);
  let platform: TestPlatform;
  let api: TestApi;
  let tenant: string;
  let token: string;

  before(async () => {
    platform = await startTestPlatform('reqmetrics');
    [tenant] = await readyTenants(platform, ['a']);
    api = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace);
    await seedUser(api, tenant, 'owner', `owner@${tenant}.example`);
    token = (await signIn(api, tenant, `owner@${tenant}.example`)).access;
  });

  after(async () => {
    await api?.close();
    await platform?.cleanup();
  });

  it('answers 404 for /metrics on the public port and serves it on the metrics port', async () => {
    const publicPort = await api.call('GET', '/metrics');
    expect(publicPort.status).to.equal(404);
    expect(JSON.stringify(publicPort.body)).not.to.include('tenantry_api_');
    const scrape = await fetch(`${api.metricsUrl}/metrics`);
    expect(scrape.status).to.equal(200);
    expect(scrape.headers.get('content-type')).to.match(/^text\/plain/);
    expect(await scrape.text()).to.match(/^# TYPE tenantry_api_http_request_duration_seconds histogram$/m);
  });

  it('labels requests by the route pattern, also when an error handler answers, never by the raw path', async () => {
    const ids = [randomUUID(), randomUUID()];
    for (const id of ids) {
      expect((await api.call('GET', `/api/users/${id}`, { token })).status).to.equal(404);
    }
    expect((await api.call('GET', '/api/users', { token })).status).to.equal(200);
    expect((await api.call('GET', `/no/such/${ids[0]}`)).status).to.equal(404);
    expect((await api.call('GET', '/healthz')).status).to.equal(200);

    const text = await api.metrics();
    const counts = requestCounts(text);
    expect(counts.get('GET /api/users/:id 404')).to.equal(2);
    expect(counts.get('GET /api/users 200')).to.equal(1);
    expect(counts.get('GET unmatched 404')).to.be.at.least(1);
    expect(counts.get('GET /healthz 200')).to.be.at.least(1);
    expect(counts.get('POST /api/auth/login 200')).to.equal(1);
    for (const id of ids) expect(text).not.to.include(id);
    // Every observation lands in a bucket: the +Inf bucket equals the count.
    expect(text).to.match(
      /^tenantry_api_http_request_duration_seconds_bucket\{le="\+Inf",method="GET",route="\/api\/users\/:id",status="404"\} 2$/m,
    );
  });
});
