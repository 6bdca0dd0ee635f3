/**
 * Listing a bucket: ListObjects (v1: marker, NextMarker) and ListObjectsV2 (continuation
 * tokens), with prefix, delimiter, max-keys and encoding-type=url.
 */

import type { ListOptions, ListPage } from '../blob/blob-store.js';
import { decodeToken } from '../internal/keys.js';
import { StorageError } from '../storage-error.js';
import { type Authed, sendXml } from './context.js';
import { isoDate, OWNER, XMLNS, xmlEscape } from './xml.js';

function maxKeysOf(p: Map<string, string>, name = 'max-keys'): number {
  const raw = p.get(name);
  const n = raw === undefined || raw === '' ? 1000 : Number(raw);
  if (!Number.isInteger(n) || n < 0)
    throw new StorageError('InvalidArgument', 400, `${name} must be a non-negative integer`);
  return Math.min(n, 1000);
}

/** The encoder of keys and prefixes in the answer: url-encoded when asked, escaped always. */
export function keyEncoder(p: Map<string, string>): {
  urlEnc: boolean;
  enc: (v: string) => string;
} {
  const et = p.get('encoding-type');
  if (et !== undefined && et !== 'url')
    throw new StorageError('InvalidArgument', 400, 'encoding-type must be url');
  const urlEnc = et === 'url';
  return {
    urlEnc,
    enc: (v) => xmlEscape(urlEnc ? encodeURIComponent(v).replaceAll('%2F', '/') : v),
  };
}

async function page(c: Authed, maxKeys: number, after: Partial<ListOptions>): Promise<ListPage> {
  const s = await c.env.buckets.store(c.b);
  if (maxKeys === 0)
    return {
      objects: [],
      commonPrefixes: [],
      isTruncated: false,
      nextContinuationToken: undefined,
    };
  const opts: ListOptions = { maxKeys, ...after };
  const prefix = c.params.get('prefix');
  const delimiter = c.params.get('delimiter');
  if (prefix) opts.prefix = prefix;
  if (delimiter) opts.delimiter = delimiter;
  return s.list(opts);
}

function contents(pg: ListPage, enc: (v: string) => string, owner: boolean): string {
  let x = '';
  for (const o of pg.objects) {
    x += `<Contents><Key>${enc(o.key)}</Key><LastModified>${isoDate(o.lastModified)}</LastModified><ETag>"${o.etag}"</ETag><Size>${o.size}</Size>`;
    if (owner)
      x += `<Owner><ID>${OWNER.id}</ID><DisplayName>${OWNER.displayName}</DisplayName></Owner>`;
    x += '<StorageClass>STANDARD</StorageClass></Contents>';
  }
  for (const cp of pg.commonPrefixes)
    x += `<CommonPrefixes><Prefix>${enc(cp)}</Prefix></CommonPrefixes>`;
  return x;
}

/** The key after which the next page starts (the last key or common prefix covered). */
function lastCovered(pg: ListPage): string | undefined {
  if (!pg.nextContinuationToken) return undefined;
  return decodeToken(pg.nextContinuationToken);
}

export async function listObjects(c: Authed) {
  const p = c.params;
  const maxKeys = maxKeysOf(p);
  const { urlEnc, enc } = keyEncoder(p);
  const marker = p.get('marker') ?? '';
  const pg = await page(c, maxKeys, marker ? { startAfter: marker } : {});
  let x = `<ListBucketResult xmlns="${XMLNS}"><Name>${xmlEscape(c.b)}</Name><Prefix>${enc(p.get('prefix') ?? '')}</Prefix><Marker>${enc(marker)}</Marker><MaxKeys>${maxKeys}</MaxKeys>`;
  if (p.get('delimiter')) x += `<Delimiter>${enc(p.get('delimiter')!)}</Delimiter>`;
  if (urlEnc) x += '<EncodingType>url</EncodingType>';
  x += `<IsTruncated>${pg.isTruncated}</IsTruncated>`;
  const next = lastCovered(pg);
  if (pg.isTruncated && next !== undefined) x += `<NextMarker>${enc(next)}</NextMarker>`;
  x += `${contents(pg, enc, true)}</ListBucketResult>`;
  sendXml(c, 200, x);
}

export async function listObjectsV2(c: Authed) {
  const p = c.params;
  const maxKeys = maxKeysOf(p);
  const { urlEnc, enc } = keyEncoder(p);
  const after: Partial<ListOptions> = {};
  if (p.get('start-after')) after.startAfter = p.get('start-after')!;
  if (p.get('continuation-token')) after.continuationToken = p.get('continuation-token')!;
  const pg = await page(c, maxKeys, after);
  let x = `<ListBucketResult xmlns="${XMLNS}"><Name>${xmlEscape(c.b)}</Name><Prefix>${enc(p.get('prefix') ?? '')}</Prefix>`;
  x += `<KeyCount>${pg.objects.length + pg.commonPrefixes.length}</KeyCount><MaxKeys>${maxKeys}</MaxKeys>`;
  if (p.get('delimiter')) x += `<Delimiter>${enc(p.get('delimiter')!)}</Delimiter>`;
  if (urlEnc) x += '<EncodingType>url</EncodingType>';
  x += `<IsTruncated>${pg.isTruncated}</IsTruncated>`;
  if (p.get('continuation-token'))
    x += `<ContinuationToken>${xmlEscape(p.get('continuation-token')!)}</ContinuationToken>`;
  if (pg.nextContinuationToken)
    x += `<NextContinuationToken>${pg.nextContinuationToken}</NextContinuationToken>`;
  if (p.get('start-after')) x += `<StartAfter>${enc(p.get('start-after')!)}</StartAfter>`;
  x += `${contents(pg, enc, p.get('fetch-owner') === 'true')}</ListBucketResult>`;
  sendXml(c, 200, x);
}
