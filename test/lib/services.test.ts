import { expect } from 'chai';
import { redactUrl, serviceUrlsFromEnv, defaultServiceUrls } from '../../lib/services.js';

describe('service URLs', () => {
  it('default to the local services', () => {
    expect(serviceUrlsFromEnv({})).to.deep.equal(defaultServiceUrls);
  });

  it('come from the environment when set', () => {
    const urls = serviceUrlsFromEnv({ POSTGRES_URL: 'postgres://a@db:5433/x', REDIS_URL: 'redis://r:1' });
    expect(urls.postgres).to.equal('postgres://a@db:5433/x');
    expect(urls.redis).to.equal('redis://r:1');
    expect(urls.rabbitmq).to.equal(defaultServiceUrls.rabbitmq);
  });

  it('mask passwords and never echo an unparseable URL', () => {
    expect(redactUrl('amqp://user:s3cret@h:5672/v')).to.equal('amqp://user:***@h:5672/v');
    expect(redactUrl('not a url s3cret')).to.equal('<unparseable url>');
  });
});
