/**
 * Request bodies in XML (CompleteMultipartUpload, DeleteObjects, Tagging, AccessControlPolicy),
 * read with fast-xml-parser, the parser the AWS SDK itself uses. Entities are decoded, numeric
 * ones included (Go's encoding/xml writes the ETag's quotes as `&#34;`); a DOCTYPE is refused,
 * so no entity is ever defined, let alone expanded; the body is bounded.
 */
import type { IncomingMessage } from 'node:http';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { StorageError } from '../storage-error.js';
import { xmlRepresentable } from './xml.js';

const malformed = (msg: string) =>
  new StorageError('MalformedXML', 400, `the XML body is not valid: ${msg}`);

/** Elements that may repeat, always parsed as arrays. */
const REPEATED = new Set(['Part', 'Object', 'Tag', 'Grant']);

const parser = new XMLParser({
  ignoreAttributes: true,
  removeNSPrefix: true,
  ignoreDeclaration: true,
  parseTagValue: false,
  trimValues: true,
  processEntities: true,
  htmlEntities: true,
  isArray: (name) => REPEATED.has(name),
});

export type XmlNode = { [name: string]: XmlValue };
export type XmlValue = string | XmlNode | XmlValue[];

/** Parse an XML document: its root element's name and content. */
export function parseXml(text: string): { root: string; body: XmlNode } {
  if (/<!DOCTYPE/i.test(text)) throw malformed('a DOCTYPE is not allowed');
  // The parser drops references to characters XML 1.0 excludes (`k&#1;` would read as `k`,
  // another key): refuse them instead.
  for (const m of text.matchAll(/&#(x[0-9a-fA-F]{1,8}|[0-9]{1,10});/g)) {
    const ref = m[1]!;
    const cp = ref[0] === 'x' ? Number.parseInt(ref.slice(1), 16) : Number(ref);
    if (cp > 0x10ffff || !xmlRepresentable(String.fromCodePoint(cp)))
      throw malformed(`${m[0]} names a character XML cannot hold`);
  }
  let doc: XmlNode;
  try {
    const v = XMLValidator.validate(text);
    if (v !== true) throw malformed(`${v.err.msg} (line ${v.err.line})`);
    doc = parser.parse(text) as XmlNode;
  } catch (err) {
    if (err instanceof StorageError) throw err;
    // The parsers recurse: a document nested deeper than the stack is refused, not a 500.
    throw malformed('the document is nested too deeply or cannot be read');
  }
  const names = Object.keys(doc);
  if (names.length !== 1) throw malformed('expected one root element');
  const root = names[0]!;
  const body = doc[root];
  return { root, body: typeof body === 'object' && !Array.isArray(body) ? body : {} };
}

/** Read and parse a request body of at most `maxBytes`. */
export async function readXml(
  req: IncomingMessage,
  maxBytes = 1024 * 1024,
): Promise<{ root: string; body: XmlNode; raw: Buffer }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const ch of req) {
    size += (ch as Buffer).length;
    if (size > maxBytes)
      throw new StorageError('MalformedXML', 400, `the XML body is larger than ${maxBytes} bytes`);
    chunks.push(ch as Buffer);
  }
  const raw = Buffer.concat(chunks);
  if (raw.length === 0) throw malformed('the body is empty');
  return { ...parseXml(raw.toString('utf8')), raw };
}

/** The text of a child element, or undefined. */
export function text(n: XmlNode | undefined, name: string): string | undefined {
  const v = n?.[name];
  if (v === undefined) return undefined;
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) throw malformed(`${name} appears more than once`);
  return '';
}

/** Child elements that may repeat. */
export function children(n: XmlNode | undefined, name: string): XmlNode[] {
  const v = n?.[name];
  if (v === undefined) return [];
  const arr = Array.isArray(v) ? v : [v];
  return arr.map((x) => (typeof x === 'object' && !Array.isArray(x) ? x : {}));
}

/** A child element. */
export function child(n: XmlNode | undefined, name: string): XmlNode | undefined {
  const v = n?.[name];
  if (v === undefined) return undefined;
  if (typeof v === 'object' && !Array.isArray(v)) return v;
  if (v === '') return {};
  throw malformed(`${name} must be an element`);
}
