// Client authentication at the OAuth endpoints (RFC 6749 §2.3.1): how credentials are read from HTTP Basic
// and from the body, and what is refused. A request is only its Authorization header and parsed body here.
import { expect } from 'chai';
import type { Request } from 'express';
import { basicCredentials, oauthParameters, presentedClient } from '../../../api/src/oauth/client-auth.js';
import { OAuthError } from '../../../api/src/oauth/errors.js';

function request(body: unknown, authorization?: string): Request {
  return {
    body,
    get: (name: string) => (name.toLowerCase() === 'authorization' ? authorization : undefined),
  } as unknown as Request;
}

const basic = (userPass: string) => `Basic ${Buffer.from(userPass).toString('base64')}`;

function oauthError(fn: () => unknown): OAuthError {
  try {
    fn();
  } catch (error) {
    expect(error).to.be.instanceOf(OAuthError);
    return error as OAuthError;
  }
  return expect.fail('no OAuthError');
}

describe('OAuth client authentication', () => {
  it('form-decodes the Basic user and password (RFC 6749 §2.3.1 and Appendix B)', () => {
    expect(basicCredentials(basic('acme.cl_x%2Fy:s%3Acret+with%2Bplus'))).to.deep.equal({
      clientId: 'acme.cl_x/y',
      clientSecret: 's:cret with+plus',
    });
    // The first colon separates: a raw colon in the secret (it should have been encoded) stays in it.
    expect(basicCredentials(basic('id:a:b'))?.clientSecret).to.equal('a:b');
    expect(basicCredentials(undefined)).to.equal(undefined);
  });

  it('refuses malformed Basic credentials and other schemes as invalid_client', () => {
    for (const header of [
      basic('no-colon'),
      basic(':secret'),
      basic('id:'),
      'Basic !!!',
      basic('%zz:x'),
      'Bearer abc',
    ]) {
      expect(oauthError(() => basicCredentials(header)).code, header).to.equal('invalid_client');
    }
  });

  it('reads client_secret_post, and client_secret_basic with a matching client_id in the body', () => {
    expect(presentedClient(request({ client_id: 'a', client_secret: 's' }))).to.deep.equal({
      clientId: 'a',
      clientSecret: 's',
      method: 'client_secret_post',
    });
    expect(presentedClient(request({ client_id: 'a' }, basic('a:s')))).to.deep.equal({
      clientId: 'a',
      clientSecret: 's',
      method: 'client_secret_basic',
    });
    expect(presentedClient(request({ grant_type: 'password' }))).to.equal(undefined);
  });

  it('refuses two methods at once, a different client_id, and a client_id without a secret', () => {
    expect(oauthError(() => presentedClient(request({ client_secret: 's' }, basic('a:s')))).code).to.equal(
      'invalid_request',
    );
    expect(oauthError(() => presentedClient(request({ client_id: 'b' }, basic('a:s')))).code).to.equal(
      'invalid_request',
    );
    expect(oauthError(() => presentedClient(request({ client_id: 'a' }))).code).to.equal('invalid_client');
  });

  it('treats empty parameters as absent, ignores unknown ones and refuses repeated ones (§3.2)', () => {
    expect(oauthParameters(request({ a: '', b: 'x', other: 'y' }), ['a', 'b'] as const)).to.deep.equal({
      b: 'x',
    });
    expect(oauthError(() => oauthParameters(request({ a: ['x', 'y'] }), ['a'] as const)).code).to.equal(
      'invalid_request',
    );
    expect(oauthError(() => oauthParameters(request({ a: 5 }), ['a'] as const)).code).to.equal(
      'invalid_request',
    );
  });
});
