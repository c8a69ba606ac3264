import { expect } from 'chai';
import { loadApiConfig } from '../../api/src/config.js';
import { ConfigError } from '../../lib/config.js';

function problems(environment: NodeJS.ProcessEnv): string[] {
  try {
    loadApiConfig(environment);
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  return expect.fail('the configuration was accepted');
}

describe('API configuration', () => {
  it('serves metrics on a port of their own, 9090 unless set, never the public one', () => {
    expect(loadApiConfig({}).metrics).to.deep.equal({ host: '0.0.0.0', port: 9090 });
    expect(loadApiConfig({ METRICS_HOST: '127.0.0.1', METRICS_PORT: '0' }).metrics).to.deep.equal({
      host: '127.0.0.1',
      port: 0,
    });
    expect(problems({ PORT: '9100', METRICS_PORT: '9100' })).to.deep.equal([
      'METRICS_PORT: must differ from PORT',
    ]);
    expect(problems({ METRICS_PORT: 'ninety' })[0]).to.match(/^METRICS_PORT: /);
  });

  it('keeps idle keep-alive connections 65 s by default, longer than common proxies', () => {
    expect(loadApiConfig({}).keepAliveMs).to.equal(65_000);
    expect(loadApiConfig({ HTTP_KEEP_ALIVE_SECONDS: '120' }).keepAliveMs).to.equal(120_000);
  });

  it('names a keep-alive that is not a whole number of seconds from 1 to 3600', () => {
    for (const value of ['0', '3601', '1.5', 'long']) {
      const found = problems({ HTTP_KEEP_ALIVE_SECONDS: value });
      expect(found, value).to.have.length(1);
      expect(found[0], value).to.match(/^HTTP_KEEP_ALIVE_SECONDS: /);
    }
  });

  it('takes the password-hashing budget, per tenant at most the whole', () => {
    expect(loadApiConfig({}).passwordHashing).to.deep.equal({ concurrency: 3, perTenant: 2 });
    expect(
      loadApiConfig({ PASSWORD_HASH_CONCURRENCY: '6', PASSWORD_HASH_CONCURRENCY_PER_TENANT: '6' })
        .passwordHashing,
    ).to.deep.equal({ concurrency: 6, perTenant: 6 });
    const found = problems({ PASSWORD_HASH_CONCURRENCY: '2', PASSWORD_HASH_CONCURRENCY_PER_TENANT: '3' });
    expect(found).to.have.length(1);
    expect(found[0]).to.match(
      /^PASSWORD_HASH_CONCURRENCY_PER_TENANT: must not exceed PASSWORD_HASH_CONCURRENCY/,
    );
  });
});
