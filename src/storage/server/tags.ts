/** Object tags: the `x-amz-tagging` header's form, the Tagging XML, and S3's limits. */
import { StorageError } from '../storage-error.js';
import { XMLNS, xmlEscape, xmlRepresentable } from './xml.js';
import { child, children, text, type XmlNode } from './xml-body.js';

const invalid = (msg: string) => new StorageError('InvalidTag', 400, msg);

/** At most 10 tags, keys of 1-128 characters, values of up to 256, keys distinct. */
export function checkTags(pairs: [string, string][]): Record<string, string> {
  if (pairs.length > 10) throw invalid('an object can have at most 10 tags');
  const out: Record<string, string> = {};
  const seen = new Set<string>();
  for (const [k, v] of pairs) {
    if (k.length < 1 || k.length > 128) throw invalid('a tag key must be 1 to 128 characters');
    if (v.length > 256) throw invalid('a tag value must be at most 256 characters');
    if (seen.has(k)) throw invalid(`the tag key ${JSON.stringify(k)} appears twice`);
    if (!xmlRepresentable(k) || !xmlRepresentable(v))
      throw invalid('tag keys and values must not contain control characters');
    seen.add(k);
    Object.defineProperty(out, k, {
      value: v,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/** Tags from the `x-amz-tagging` header (URL query form: `a=1&b=2`). */
export function tagsFromHeader(
  h: string | string[] | undefined,
): Record<string, string> | undefined {
  if (h === undefined) return undefined;
  if (Array.isArray(h)) throw invalid('send one x-amz-tagging header');
  return checkTags([...new URLSearchParams(h)]);
}

/** Tags from a `<Tagging><TagSet><Tag><Key/><Value/></Tag>...` body. */
export function tagsFromXml(root: string, body: XmlNode): Record<string, string> {
  if (root !== 'Tagging')
    throw new StorageError('MalformedXML', 400, 'the body must be a Tagging document');
  return checkTags(
    children(child(body, 'TagSet'), 'Tag').map((t) => {
      const k = text(t, 'Key');
      if (k === undefined) throw invalid('each Tag needs a Key');
      return [k, text(t, 'Value') ?? ''];
    }),
  );
}

export function tagsXml(tags: Record<string, string>): string {
  const items = Object.entries(tags)
    .map(([k, v]) => `<Tag><Key>${xmlEscape(k)}</Key><Value>${xmlEscape(v)}</Value></Tag>`)
    .join('');
  return `<Tagging xmlns="${XMLNS}"><TagSet>${items}</TagSet></Tagging>`;
}
