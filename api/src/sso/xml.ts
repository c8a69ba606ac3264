// Strict XML reading for SAML messages and metadata. Anything with a DTD is
// refused outright: SAML never needs one, and a DTD is how XXE and entity
// expansion attacks get in.
import { DOMParser, type Document, type Element, type Node } from '@xmldom/xmldom';

export const ns = {
  metadata: 'urn:oasis:names:tc:SAML:2.0:metadata',
  protocol: 'urn:oasis:names:tc:SAML:2.0:protocol',
  assertion: 'urn:oasis:names:tc:SAML:2.0:assertion',
  dsig: 'http://www.w3.org/2000/09/xmldsig#',
} as const;

export class XmlRefused extends Error {
  override name = 'XmlRefused';
}

/** Parses `xml`, throwing XmlRefused for a DTD, an entity declaration or any parse error. */
export function parseStrictXml(xml: string): Document {
  // Checked on the text as well as the tree: a DOCTYPE is refused before any parser sees it.
  if (/<!DOCTYPE|<!ENTITY/i.test(xml)) throw new XmlRefused('XML with a DTD or entity declaration');
  let doc: Document;
  try {
    doc = new DOMParser({
      locator: false,
      onError: (level: string, message: string) => {
        if (level !== 'warning') throw new XmlRefused(message);
      },
    }).parseFromString(xml, 'text/xml');
  } catch (error) {
    throw new XmlRefused(`unparseable XML: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (doc.doctype || !doc.documentElement) throw new XmlRefused('XML without a single root element');
  return doc;
}

function isElement(node: Node): node is Element {
  return node.nodeType === 1;
}

/** Direct children of `parent` with the given namespace and local name. */
export function childElements(parent: Element, namespace: string, localName: string): Element[] {
  const found: Element[] = [];
  for (let node = parent.firstChild; node; node = node.nextSibling) {
    if (isElement(node) && node.namespaceURI === namespace && node.localName === localName) found.push(node);
  }
  return found;
}

/** The single child with the given namespace and local name; undefined when there are none or several. */
export function onlyChild(parent: Element, namespace: string, localName: string): Element | undefined {
  const found = childElements(parent, namespace, localName);
  return found.length === 1 ? found[0] : undefined;
}

/** All descendants of `root` with the given namespace and local name, in document order. */
export function descendants(root: Element | Document, namespace: string, localName: string): Element[] {
  return Array.from(root.getElementsByTagNameNS(namespace, localName));
}

/** An attribute's value, or undefined when it is absent or empty. */
export function attribute(element: Element, name: string): string | undefined {
  const value = element.getAttribute(name);
  return value ? value : undefined;
}

/** The element's text with whitespace trimmed; comments never contribute, so a comment cannot split a value. */
export function text(element: Element): string {
  return (element.textContent ?? '').trim();
}
