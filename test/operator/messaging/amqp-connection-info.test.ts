import { expect } from 'chai';
import { tenantNames } from '../../../lib/tenant/index.js';
import {
  amqpConnectionInfo,
  escapeRegex,
  tenantPermissionPattern,
} from '../../../operator/src/messaging/rabbitmq-admin.js';

describe('tenant permission pattern', () => {
  const pattern = tenantPermissionPattern(tenantNames('acme').queuePrefix);
  // RabbitMQ uses PCRE; for these patterns JavaScript regexes agree with it.
  const matches = (name: string) => new RegExp(pattern).test(name);

  it('is the escaped, anchored queue prefix', () => {
    expect(pattern).to.equal('^tenant\\.acme\\..*');
  });

  it("matches the tenant's own names", () => {
    expect(matches('tenant.acme.work')).to.be.true;
    expect(matches('tenant.acme.events.retry')).to.be.true;
  });

  it('matches no other tenant, no unprefixed name and nothing an unescaped dot would let through', () => {
    for (const name of [
      'tenant.acme-eu.work',
      'tenant.acmex.work',
      'tenant.other.work',
      'work',
      'amq.default',
      'x.tenant.acme.work',
      'tenant_acme_work',
      'tenantXacmeXwork',
    ]) {
      expect(matches(name), name).to.be.false;
    }
  });

  it('escapes every regex metacharacter', () => {
    const literal = 'a.b*c+d?e^f$g{h}i(j)k|l[m]n\\o';
    const escaped = new RegExp(`^${escapeRegex(literal)}$`);
    expect(escaped.test(literal)).to.be.true;
    expect(escaped.test('aXb*c+d?e^f$g{h}i(j)k|l[m]n\\o')).to.be.false;
    expect(escaped.test('a.bbc+d?e^f$g{h}i(j)k|l[m]n\\o')).to.be.false;
  });
});

describe('amqpConnectionInfo', () => {
  const base = {
    host: 'rabbitmq.tenantry.svc',
    port: 5672,
    vhost: '/',
    username: 'tenant-acme',
    password: 'pw',
    queuePrefix: 'tenant.acme.',
  };

  it('gives every Secret field as a string, with the vhost URL-encoded in the uri', () => {
    expect(amqpConnectionInfo(base)).to.deep.equal({
      host: 'rabbitmq.tenantry.svc',
      port: '5672',
      vhost: '/',
      username: 'tenant-acme',
      password: 'pw',
      uri: 'amqp://tenant-acme:pw@rabbitmq.tenantry.svc:5672/%2F',
      queuePrefix: 'tenant.acme.',
    });
  });

  it('encodes credentials so that they survive URL parsing', () => {
    const password = 'p@ss:w/rd#?%&+ é';
    const info = amqpConnectionInfo({ ...base, username: 'u:ser@x', password, vhost: 'platform/prod' });
    const parsed = new URL(info.uri);
    expect(decodeURIComponent(parsed.username)).to.equal('u:ser@x');
    expect(decodeURIComponent(parsed.password)).to.equal(password);
    expect(parsed.hostname).to.equal('rabbitmq.tenantry.svc');
    expect(parsed.port).to.equal('5672');
    expect(decodeURIComponent(parsed.pathname.slice(1))).to.equal('platform/prod');
    expect(info.uri).to.match(/:5672\/platform%2Fprod$/);
  });

  it('uses amqps with TLS and brackets an IPv6 host', () => {
    const info = amqpConnectionInfo({ ...base, host: '::1', port: 5671, tls: true, vhost: 'v' });
    expect(info.uri).to.equal('amqps://tenant-acme:pw@[::1]:5671/v');
    expect(info.host).to.equal('::1');
  });
});
