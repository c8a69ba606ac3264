// Reads what the SP needs from a tenant's IdP metadata: who the IdP is, the
// certificates its signatures must verify against, and where to send users.
import { X509Certificate } from 'node:crypto';
import type { Element } from '@xmldom/xmldom';
import { SsoError } from './identity.js';
import { attribute, childElements, descendants, ns, parseStrictXml, text, XmlRefused } from './xml.js';

export const bindings = {
  redirect: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect',
  post: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST',
} as const;

export interface IdpMetadata {
  entityId: string;
  /** PEM certificates; more than one while the IdP rotates its signing key. */
  signingCerts: string[];
  /** HTTP-Redirect SingleSignOnService location, where AuthnRequests go. */
  ssoUrl: string;
}

/**
 * Parses IdP metadata XML. Throws SsoError 'metadata_invalid' naming the
 * problem, so the tenants API can also use this to validate metadata on write.
 */
export function parseIdpMetadata(xml: string, now: number = Date.now()): IdpMetadata {
  let root: Element;
  try {
    root = parseStrictXml(xml).documentElement as Element;
  } catch (error) {
    if (error instanceof XmlRefused) throw new SsoError('metadata_invalid', error.message, { cause: error });
    throw error;
  }
  const entity = entityDescriptor(root);
  checkValidUntil(root, now);
  checkValidUntil(entity, now);

  const entityId = attribute(entity, 'entityID');
  if (!entityId) throw invalid('EntityDescriptor has no entityID');
  const idps = childElements(entity, ns.metadata, 'IDPSSODescriptor').filter((idp) =>
    (idp.getAttribute('protocolSupportEnumeration') ?? '').split(/\s+/).includes(ns.protocol),
  );
  const idp = idps[0];
  if (!idp || idps.length > 1) throw invalid('expected exactly one SAML 2.0 IDPSSODescriptor');
  checkValidUntil(idp, now);

  const signingCerts = childElements(idp, ns.metadata, 'KeyDescriptor')
    // A KeyDescriptor without `use` serves both signing and encryption.
    .filter((key) => (key.getAttribute('use') || 'signing') === 'signing')
    .flatMap((key) => descendants(key, ns.dsig, 'X509Certificate'))
    .map((cert) => toPem(text(cert)));
  if (signingCerts.length === 0) throw invalid('no signing certificate');

  const redirect = childElements(idp, ns.metadata, 'SingleSignOnService').find(
    (service) => service.getAttribute('Binding') === bindings.redirect,
  );
  const ssoUrl = redirect && attribute(redirect, 'Location');
  if (!ssoUrl) throw invalid('no HTTP-Redirect SingleSignOnService');
  checkSsoUrl(ssoUrl);

  return { entityId, signingCerts: [...new Set(signingCerts)], ssoUrl };
}

function entityDescriptor(root: Element): Element {
  if (root.namespaceURI !== ns.metadata) throw invalid('not SAML metadata');
  if (root.localName === 'EntityDescriptor') return root;
  if (root.localName === 'EntitiesDescriptor') {
    // An aggregate is accepted only when it names a single IdP, so there is no guessing which one.
    const withIdp = childElements(root, ns.metadata, 'EntityDescriptor').filter(
      (entity) => childElements(entity, ns.metadata, 'IDPSSODescriptor').length > 0,
    );
    const only = withIdp[0];
    if (only && withIdp.length === 1) return only;
    throw invalid('EntitiesDescriptor must hold exactly one identity provider');
  }
  throw invalid(`unexpected root element ${root.localName ?? ''}`);
}

function checkValidUntil(element: Element, now: number): void {
  const validUntil = attribute(element, 'validUntil');
  if (validUntil === undefined) return;
  const until = Date.parse(validUntil);
  if (Number.isNaN(until)) throw invalid(`unparseable validUntil ${validUntil}`);
  if (until <= now) throw invalid(`metadata expired at ${validUntil}`);
}

function toPem(base64: string): string {
  try {
    return new X509Certificate(Buffer.from(base64.replace(/\s+/g, ''), 'base64')).toString();
  } catch (error) {
    throw new SsoError('metadata_invalid', 'a signing certificate does not parse', { cause: error });
  }
}

function checkSsoUrl(value: string): void {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid(`SingleSignOnService Location ${value} is not a URL`);
  }
  // Users' browsers carry the AuthnRequest there; plain http only for an IdP on the developer's machine.
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw invalid(`SingleSignOnService Location ${value} must be https`);
  }
}

function invalid(detail: string): SsoError {
  return new SsoError('metadata_invalid', detail);
}
