// SSO requests to tenant-chosen URLs connect only to addresses that were
// checked. A DNS-rebinding IdP name answers with a public address while the URL
// is checked and with loopback when the connection is made; the request must be
// refused at connect time, and nothing must reach the loopback listener. The
// services run as the API builds them (no fetch injected): only the resolver is
// scripted, so the real connection path is the one exercised.
import { once } from 'node:events';
import net from 'node:net';
import { expect } from 'chai';
import { SsoError } from '../../../api/src/sso/identity.js';
import { OidcService } from '../../../api/src/sso/oidc.js';
import { SamlService } from '../../../api/src/sso/saml.js';
import { RedisExpiringStore } from '../../../api/src/sso/store.js';
import type { ResolveHost } from '../../../lib/outbound-address.js';
import { createTestRedis, type TestRedis } from '../../harness/services.js';

const publicBaseUrl = 'https://app.tenantry.test';
const publicAddress = '93.184.216.34';
const acmeUid = '0d5e9c1a-3b7e-4f3c-9a57-2c1f0e6b8d41';

/**
 * The attacker's DNS: a public answer to every check, loopback to the lookup
 * made while a socket connects (recognised by node:net's frame on the stack).
 * The name is `localhost`, so a client that resolves again on its own (the
 * system resolver) also lands on loopback, as a rebinding victim would.
 */
function rebindingResolver(calls: { check: number; connect: number }): ResolveHost {
  return (host) => {
    if (host !== 'localhost') return Promise.reject(new Error(`ENOTFOUND ${host}`));
    const connecting = (new Error().stack ?? '').includes('lookupAndConnect');
    if (connecting) calls.connect++;
    else calls.check++;
    return Promise.resolve(connecting ? ['127.0.0.1'] : [publicAddress]);
  };
}

describe('SSO outbound requests (integration, real sockets and Redis)', function () {
  this.timeout(30_000);

  let redis: TestRedis;
  let store: RedisExpiringStore;
  let listener: net.Server;
  let port: number;
  let connections: number;
  let calls: { check: number; connect: number };

  before(async () => {
    redis = await createTestRedis('sso-outbound');
    store = new RedisExpiringStore(redis.client, redis.prefix);
    // What an internal service would be: anything reaching it is the SSRF.
    listener = net.createServer((socket) => {
      connections++;
      socket.destroy();
    });
    listener.listen(0, '127.0.0.1');
    await once(listener, 'listening');
    port = (listener.address() as net.AddressInfo).port;
  });

  after(async () => {
    listener.close();
    await redis.drop();
  });

  beforeEach(() => {
    connections = 0;
    calls = { check: 0, connect: 0 };
  });

  async function refusal(promise: Promise<unknown>): Promise<SsoError> {
    const error: unknown = await promise.then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error, 'the request was not refused').to.be.instanceOf(SsoError);
    return error as SsoError;
  }

  it('refuses an OIDC issuer rebound to loopback when discovery connects', async () => {
    const oidc = new OidcService({ publicBaseUrl, store, resolveHost: rebindingResolver(calls) });
    const issuer = `https://localhost:${port}/realm`;
    const error = await refusal(
      oidc.authorizationUrl({
        name: 'acme',
        uid: acmeUid,
        domains: ['acme.test'],
        oidc: { issuer, clientId: 'acme' },
      }),
    );

    expect(connections, 'a connection reached the loopback listener').to.equal(0);
    expect(calls.check, 'the issuer was checked first').to.be.greaterThan(0);
    expect(calls.connect, 'the connection used the checked resolver').to.equal(1);
    expect(error.code).to.equal('issuer_not_allowed');
    // The client's wording names no address; the log line (detail) does.
    expect(error.message).not.to.include('127.0.0.1');
    expect(error.message).not.to.include(publicAddress);
    expect(error.detail).to.include('127.0.0.1');
  });

  it('refuses a SAML metadata URL rebound to loopback when the fetch connects', async () => {
    const saml = new SamlService({ publicBaseUrl, store, resolveHost: rebindingResolver(calls) });
    const error = await refusal(
      saml.loginUrl({
        name: 'acme',
        uid: acmeUid,
        domains: ['acme.test'],
        saml: { idpMetadataUrl: `https://localhost:${port}/metadata.xml` },
      }),
    );

    expect(connections, 'a connection reached the loopback listener').to.equal(0);
    expect(calls.check).to.be.greaterThan(0);
    expect(calls.connect).to.equal(1);
    expect(error.code).to.equal('metadata_invalid');
    expect(error.message).not.to.include('127.0.0.1');
    expect(error.detail).to.include('127.0.0.1');
  });

  it('still reaches a loopback IdP when private IdPs are allowed (development)', async () => {
    const saml = new SamlService({
      publicBaseUrl,
      store,
      allowPrivateIdps: true,
      resolveHost: rebindingResolver(calls),
    });
    // The listener hangs up at once: the fetch fails, but only after connecting through the lookup.
    await refusal(
      saml.loginUrl({
        name: 'acme',
        uid: acmeUid,
        domains: ['acme.test'],
        saml: { idpMetadataUrl: `http://localhost:${port}/metadata.xml` },
      }),
    );
    expect(connections).to.equal(1);
    expect(calls.connect).to.equal(1);
  });
});
