import { expect } from 'chai';
import { ConfigError } from '../../lib/config.js';
import { loadOperatorConfig } from '../../operator/src/config.js';

function problems(env: NodeJS.ProcessEnv): string[] {
  try {
    loadOperatorConfig(env);
    return [];
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
}

describe('operator configuration', () => {
  it('defaults to the local services', () => {
    const config = loadOperatorConfig({});
    expect(config.namespace).to.equal('tenantry-system');
    expect(config.tenantDb).to.deep.equal({ host: '127.0.0.1', port: 5432, cidrs: [] });
    expect(config.databaseServer).to.equal('127.0.0.1:5432');
    expect(config.rabbitmq).to.include({ host: '127.0.0.1', port: 5672, vhost: '/', tls: false });
    expect(config.resyncMs).to.equal(300_000);
    expect(config.http).to.deep.equal({ host: '0.0.0.0', port: 8081 });
    expect(config.metrics).to.deep.equal({ host: '0.0.0.0', port: 9090, scrapeNamespaces: [] });
  });

  it('serves metrics on a port of their own, and opens tenant workers to the scrape namespaces', () => {
    const config = loadOperatorConfig({
      METRICS_PORT: '9100',
      METRICS_SCRAPE_NAMESPACES: 'monitoring, observability',
    });
    expect(config.metrics).to.deep.equal({
      host: '0.0.0.0',
      port: 9100,
      scrapeNamespaces: ['monitoring', 'observability'],
    });
    expect(problems({ METRICS_PORT: '8081' })).to.deep.equal(['METRICS_PORT: must differ from HTTP_PORT']);
    expect(problems({ METRICS_PORT: '0', HTTP_PORT: '0' })).to.deep.equal([]);
    expect(problems({ METRICS_PORT: '65536' })[0]).to.match(/^METRICS_PORT:/);
  });

  it('derives tenant endpoints from the URLs unless overridden', () => {
    const config = loadOperatorConfig({
      POSTGRES_URL: 'postgres://admin@db.internal:6432/postgres',
      RABBITMQ_URL: 'amqps://u:p@mq.internal',
      TENANT_DB_HOST: 'pg.tenants.svc',
      POSTGRES_CIDRS: '10.1.0.0/16, 10.2.0.0/16',
    });
    // The server the databases live on is the operator's own route to it, not the workloads'.
    expect(config.databaseServer).to.equal('db.internal:6432');
    expect(config.tenantDb).to.deep.equal({
      host: 'pg.tenants.svc',
      port: 6432,
      cidrs: ['10.1.0.0/16', '10.2.0.0/16'],
    });
    expect(config.rabbitmq).to.include({ host: 'mq.internal', port: 5671, tls: true });
  });

  it('names every bad variable', () => {
    const found = problems({
      POSTGRES_URL: 'mysql://x',
      HTTP_PORT: 'eighty',
      RESYNC_SECONDS: '0',
      LEADER_ELECTION: 'maybe',
    });
    expect(found.map((p) => p.split(':')[0]).sort()).to.deep.equal([
      'HTTP_PORT',
      'LEADER_ELECTION',
      'POSTGRES_URL',
      'RESYNC_SECONDS',
    ]);
    expect(found.join('\n')).to.contain('must be a URL with scheme postgres or postgresql');
  });

  it('reads the signing key schedule, fractions included, and refuses non-positive values', () => {
    expect(loadOperatorConfig({}).signingKeys).to.deep.equal({
      rotateAfterMs: 30 * 86_400_000,
      retireAfterMs: 24 * 3_600_000,
      publishAheadMs: 600_000,
      checkIntervalMs: 60_000,
    });
    expect(
      loadOperatorConfig({ SIGNING_KEY_ROTATION_DAYS: '0.5', SIGNING_KEY_RETIRE_AFTER_HOURS: '1.5' })
        .signingKeys,
    ).to.include({ rotateAfterMs: 43_200_000, retireAfterMs: 5_400_000 });
    const found = problems({
      SIGNING_KEY_ROTATION_DAYS: '0',
      SIGNING_KEY_RETIRE_AFTER_HOURS: 'soon',
      SIGNING_KEY_CHECK_SECONDS: '0',
    });
    expect(found.map((p) => p.split(':')[0]).sort()).to.deep.equal([
      'SIGNING_KEY_CHECK_SECONDS',
      'SIGNING_KEY_RETIRE_AFTER_HOURS',
      'SIGNING_KEY_ROTATION_DAYS',
    ]);
  });

  it('publishes a new signing key ahead of signing, for less than the rotation period', () => {
    expect(
      loadOperatorConfig({ SIGNING_KEY_ROTATION_DAYS: '0.01', SIGNING_KEY_PUBLISH_AHEAD_SECONDS: '0' })
        .signingKeys,
    ).to.include({ rotateAfterMs: 864_000, publishAheadMs: 0 });
    expect(
      problems({ SIGNING_KEY_ROTATION_DAYS: '0.01', SIGNING_KEY_PUBLISH_AHEAD_SECONDS: '864' }),
    ).to.deep.equal(['SIGNING_KEY_PUBLISH_AHEAD_SECONDS: must be shorter than SIGNING_KEY_ROTATION_DAYS']);
    expect(problems({ SIGNING_KEY_PUBLISH_AHEAD_SECONDS: '-1' })[0]).to.match(
      /^SIGNING_KEY_PUBLISH_AHEAD_SECONDS:/,
    );
  });

  it('never echoes a secret from a bad URL', () => {
    const found = problems({ RABBITMQ_MANAGEMENT_URL: 'ftp://guest:s3cret@host' });
    expect(found.join('\n')).not.to.contain('s3cret');
  });
});
