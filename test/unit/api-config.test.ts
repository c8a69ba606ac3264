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
});
