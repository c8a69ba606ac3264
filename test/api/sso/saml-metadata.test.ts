// IdP metadata parsing and group-to-role mapping, without services.
import { expect } from 'chai';
import { mapRole, SsoError } from '../../../api/src/sso/identity.js';
import { lookupHost } from '../../../api/src/sso/address.js';
import { metadataFetcher } from '../../../api/src/sso/saml.js';
import { parseIdpMetadata } from '../../../api/src/sso/saml-metadata.js';
import { generateSigningKey, type SigningKey } from '../../harness/saml-idp.js';

const md = 'urn:oasis:names:tc:SAML:2.0:metadata';
const redirect = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';
const post = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST';

const body = (cert: SigningKey): string => cert.cert.replace(/-----[A-Z ]+-----|\s/g, '');

function keyDescriptor(cert: SigningKey, use?: string): string {
  return (
    `<KeyDescriptor${use ? ` use="${use}"` : ''}><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">` +
    `<ds:X509Data><ds:X509Certificate>\n${body(cert)}\n</ds:X509Certificate></ds:X509Data></ds:KeyInfo></KeyDescriptor>`
  );
}

function metadata(
  options: {
    keys?: string;
    sso?: string;
    validUntil?: string;
    entityId?: string;
    prefix?: string;
  } = {},
): string {
  const validUntil = options.validUntil ? ` validUntil="${options.validUntil}"` : '';
  return (
    (options.prefix ?? '') +
    `<EntityDescriptor xmlns="${md}" entityID="${options.entityId ?? 'https://idp.example/metadata'}"${validUntil}>` +
    `<IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">` +
    (options.keys ?? '') +
    (options.sso ?? `<SingleSignOnService Binding="${redirect}" Location="https://idp.example/sso"/>`) +
    `</IDPSSODescriptor></EntityDescriptor>`
  );
}

function expectInvalid(xml: string, detail: RegExp): void {
  let error: unknown;
  try {
    parseIdpMetadata(xml);
  } catch (caught) {
    error = caught;
  }
  expect(error).to.be.instanceOf(SsoError);
  expect((error as SsoError).code).to.equal('metadata_invalid');
  expect((error as SsoError).detail).to.match(detail);
}

describe('SAML IdP metadata', () => {
  let current: SigningKey;
  let next: SigningKey;
  let encryption: SigningKey;

  before(async function () {
    this.timeout(20_000);
    [current, next, encryption] = await Promise.all([
      generateSigningKey('current'),
      generateSigningKey('next'),
      generateSigningKey('encryption'),
    ]);
  });

  it('reads the entity ID, the HTTP-Redirect SSO URL and the signing certificates', () => {
    const parsed = parseIdpMetadata(
      metadata({
        keys: keyDescriptor(current, 'signing') + keyDescriptor(encryption, 'encryption'),
        sso:
          `<SingleSignOnService Binding="${post}" Location="https://idp.example/post"/>` +
          `<SingleSignOnService Binding="${redirect}" Location="https://idp.example/redirect"/>`,
      }),
    );
    expect(parsed.entityId).to.equal('https://idp.example/metadata');
    expect(parsed.ssoUrl).to.equal('https://idp.example/redirect');
    expect(parsed.signingCerts).to.deep.equal([current.cert]);
  });

  it('keeps every signing certificate, including ones without a use, for key rotation', () => {
    const parsed = parseIdpMetadata(
      metadata({ keys: keyDescriptor(current, 'signing') + keyDescriptor(next) }),
    );
    expect(parsed.signingCerts).to.deep.equal([current.cert, next.cert]);
  });

  it('accepts an aggregate holding exactly one identity provider', () => {
    const single = metadata({ keys: keyDescriptor(current) }).replace(` xmlns="${md}"`, '');
    const parsed = parseIdpMetadata(`<EntitiesDescriptor xmlns="${md}">${single}</EntitiesDescriptor>`);
    expect(parsed.entityId).to.equal('https://idp.example/metadata');
    expectInvalid(`<EntitiesDescriptor xmlns="${md}">${single}${single}</EntitiesDescriptor>`, /exactly one/);
  });

  it('refuses a DTD', () => {
    expectInvalid(
      metadata({ keys: keyDescriptor(current), prefix: '<!DOCTYPE EntityDescriptor [<!ENTITY x "y">]>' }),
      /DTD/,
    );
  });

  it('refuses metadata without a signing certificate', () => {
    expectInvalid(metadata({ keys: keyDescriptor(encryption, 'encryption') }), /no signing certificate/);
  });

  it('refuses a certificate that does not parse', () => {
    expectInvalid(metadata({ keys: keyDescriptor({ ...current, cert: 'AAAA' }) }), /does not parse/);
  });

  it('refuses metadata without an HTTP-Redirect SSO endpoint, or with a plain-http one', () => {
    expectInvalid(
      metadata({
        keys: keyDescriptor(current),
        sso: `<SingleSignOnService Binding="${post}" Location="https://idp.example/post"/>`,
      }),
      /HTTP-Redirect/,
    );
    expectInvalid(
      metadata({
        keys: keyDescriptor(current),
        sso: `<SingleSignOnService Binding="${redirect}" Location="http://idp.example/sso"/>`,
      }),
      /https/,
    );
    const local = parseIdpMetadata(
      metadata({
        keys: keyDescriptor(current),
        sso: `<SingleSignOnService Binding="${redirect}" Location="http://localhost:8080/sso"/>`,
      }),
    );
    expect(local.ssoUrl).to.equal('http://localhost:8080/sso');
  });

  it('refuses expired metadata', () => {
    expectInvalid(metadata({ keys: keyDescriptor(current), validUntil: '2001-01-01T00:00:00Z' }), /expired/);
  });

  it('is fetched over https from public addresses only', async () => {
    const refused = [
      'http://idp.example/metadata',
      'file:///etc/passwd',
      'not a url',
      'https://127.0.0.1/metadata',
      'https://169.254.169.254/latest/meta-data',
      'https://[::1]/metadata',
    ];
    const fetchMetadata = metadataFetcher({ allowPrivate: false, resolveHost: lookupHost });
    for (const url of refused) {
      const error: unknown = await fetchMetadata(url).catch((caught: unknown) => caught);
      expect(error, url).to.be.instanceOf(SsoError);
      expect((error as SsoError).code).to.equal('metadata_invalid');
      expect((error as SsoError).detail).to.match(/refused|not a URL/);
    }
  });

  it('refuses documents that are not SAML metadata', () => {
    expectInvalid('<EntityDescriptor entityID="x"/>', /not SAML metadata/);
    expectInvalid('not xml at all', /unparseable|root/);
  });
});

describe('SSO group-to-role mapping', () => {
  const mapping = { staff: 'member', ops: 'admin', founders: 'owner' } as const;

  it('gives the highest role any group maps to', () => {
    expect(mapRole(['staff', 'founders', 'ops'], mapping)).to.equal('owner');
    expect(mapRole(['ops', 'staff'], mapping)).to.equal('admin');
  });

  it('falls back to the default role, member unless configured', () => {
    expect(mapRole(['unknown'], mapping)).to.equal('member');
    expect(mapRole([], mapping, 'admin')).to.equal('admin');
  });

  it('never lowers the default role', () => {
    expect(mapRole(['staff'], mapping, 'admin')).to.equal('admin');
  });

  it('reads only the mapping’s own entries, never inherited ones', () => {
    expect(mapRole(['constructor', '__proto__', 'toString', 'hasOwnProperty'], {})).to.equal('member');
    const inherited = Object.create({ everyone: 'owner' }) as Record<string, 'owner'>;
    expect(mapRole(['everyone'], inherited)).to.equal('member');
  });
});
