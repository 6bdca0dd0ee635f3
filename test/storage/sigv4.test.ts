/**
 * SigV4 against the AWS SDK (byte-identical presigned URLs), every refusal the issue lists,
 * and a fast-check fuzz of single-field mutations of valid presigned URLs (zero accepted).
 * CDP_FAULT_SCALE multiplies the fuzz count (default 100,000 mutations).
 */
import { createHash, createHmac } from 'node:crypto';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { formatUrl } from '@aws-sdk/core/util';
import { getSignedUrl, S3RequestPresigner } from '@aws-sdk/s3-request-presigner';
import { escapeUriPath, HttpRequest } from '@smithy/core/protocols';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalUri,
  isCanonicalEncoded,
  uriEncode,
} from '../../src/storage/internal/uri-encoding.js';
import {
  amzDate,
  canonicalQuery,
  canonicalRequest,
  checkExpires,
  credentialScope,
  presign,
  presignObject,
  s3ObjectPath,
  signatureHex,
  signHeaders,
  signingKey,
  stringToSign,
  UNSIGNED_PAYLOAD,
} from '../../src/storage/sigv4/sign.js';
import { parseExpires, verifyRequest } from '../../src/storage/sigv4/verify.js';
import { AuthError } from '../../src/storage/storage-error.js';

const creds = { accessKeyId: 'AKIDCDPTEST', secretAccessKey: 'c2VjcmV0+/key/for/tests/only' };
const T0 = Date.parse('2026-01-02T03:04:05Z');
const HOST = '127.0.0.1:9000';

class NodeSha256 {
  #h;
  constructor(secret?: string | Uint8Array) {
    this.#h = secret ? createHmac('sha256', secret) : createHash('sha256');
  }
  update(d: string | Uint8Array) {
    this.#h.update(d);
  }
  async digest() {
    return new Uint8Array(this.#h.digest());
  }
}

/** Object keys full of what breaks signers: unicode, spaces, + = &, //, quotes, dots. */
const keyArb = fc
  .array(
    fc.oneof(
      fc.constantFrom(
        ' ',
        '+',
        '=',
        '&',
        '//',
        '/',
        "'",
        '"',
        '..',
        '.',
        '~',
        '%',
        '?',
        '#',
        '*',
        '!',
        '(',
        ')',
        '\\',
        ';',
        ',',
        ':',
        '@',
        '$',
      ),
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 4 }),
      fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 4 }),
      fc.string({ minLength: 1, maxLength: 6 }),
    ),
    { minLength: 1, maxLength: 12 },
  )
  .map((parts) => parts.join(''))
  .filter((k) => k.length > 0 && k.length < 1024);

describe('presigned URLs equal the AWS SDK presigner, byte for byte', () => {
  const peer = new S3RequestPresigner({
    credentials: creds,
    region: 'us-east-1',
    sha256: NodeSha256,
  } as unknown as ConstructorParameters<typeof S3RequestPresigner>[0]);

  it('10,000 random object keys vs S3RequestPresigner.presign, each SDK URL accepted by verify', async () => {
    const keys = fc.sample(keyArb, { numRuns: 10_000, seed: 20260102 });
    expect(keys.length).toBe(10_000);
    let checked = 0;
    for (const key of keys) {
      const ours = presignObject({
        endpoint: `http://${HOST}`,
        bucket: 'bucket-1',
        key,
        method: 'GET',
        expiresIn: 900,
        credentials: creds,
        region: 'us-east-1',
        date: T0,
      });
      const req = new HttpRequest({
        protocol: 'http:',
        hostname: '127.0.0.1',
        port: 9000,
        method: 'GET',
        path: `/bucket-1/${escapeUriPath(key)}`,
        headers: { host: HOST },
      });
      const theirs = formatUrl(
        await peer.presign(req, { signingDate: new Date(T0), expiresIn: 900 }),
      );
      if (ours !== theirs) expect({ key, ours }).toEqual({ key, ours: theirs });
      // And our verifier accepts the SDK's URL, naming exactly this object. The raw target is
      // cut from the URL text (new URL() would resolve dot segments).
      const target = theirs.slice(`http://${HOST}`.length);
      const v = verifyRequest({ method: 'GET', url: target, headers: { host: HOST } }, opts());
      if (v.path !== `/bucket-1/${key}`) expect({ key, path: v.path }).toEqual({ key, path: key });
      checked++;
    }
    expect(checked).toBe(10_000);
  });

  it('300 random keys vs getSignedUrl(GetObjectCommand), path encoded by the SDK serializer', async () => {
    const client = new S3Client({
      region: 'us-east-1',
      endpoint: `http://${HOST}`,
      forcePathStyle: true,
      credentials: creds,
    });
    try {
      for (const key of fc.sample(keyArb, { numRuns: 300, seed: 7 })) {
        const theirs = await getSignedUrl(client, new GetObjectCommand({ Bucket: 'b', Key: key }), {
          expiresIn: 3600,
          signingDate: new Date(T0),
        });
        const q = new URL(theirs).searchParams;
        const extra: [string, string][] = [];
        for (const [k, v] of q) if (!k.startsWith('X-Amz-')) extra.push([k, v]);
        const ours = presignObject({
          endpoint: `http://${HOST}`,
          bucket: 'b',
          key,
          expiresIn: 3600,
          credentials: creds,
          region: 'us-east-1',
          date: T0,
          query: extra,
        });
        expect(ours).toBe(theirs);
      }
    } finally {
      client.destroy();
    }
  });

  it('never resolves dot segments or encodes twice in S3 mode', () => {
    expect(canonicalUri('/b/%2e%2e/x', 's3')).toBe('/b/../x');
    expect(canonicalUri('/b/a%2Fb', 's3')).toBe('/b/a/b');
    expect(canonicalUri('/b/a%20b', 's3')).toBe('/b/a%20b');
    expect(canonicalUri('/b/a%20b', 'generic')).toBe('/b/a%2520b');
    expect(s3ObjectPath('b', 'a b/+=&//\'"é')).toBe('/b/a%20b/%2B%3D%26//%27%22%C3%A9');
  });

  it('refuses to presign with an expiry outside 1..604800 or not an integer', () => {
    for (const bad of [0, -1, 604801, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => checkExpires(bad)).toThrow(/integer number of seconds/);
    }
    expect(checkExpires(1)).toBe(1);
    expect(checkExpires(604800)).toBe(604800);
  });
});

// ---------------------------------------------------------------------------------------------
// Refusals

const lookup = (id: string) =>
  id === creds.accessKeyId ? { secretAccessKey: creds.secretAccessKey } : undefined;
const opts = (now = T0 + 1000) => ({ region: 'us-east-1', now, lookup });

/**
 * Build a presigned URL from explicit parameter strings, signed correctly with whatever secret
 * is given, so that only the field under test can be the reason for a refusal.
 */
function signRaw(p: {
  method?: string;
  path?: string;
  host?: string;
  expires?: string;
  amz?: string;
  credDate?: string;
  accessKeyId?: string;
  secret?: string;
  signedHeaders?: string;
  extra?: [string, string][];
}): { method: string; url: string; headers: Record<string, string> } {
  const method = p.method ?? 'GET';
  const path = p.path ?? '/bucket/dir/obj.txt';
  const host = p.host ?? HOST;
  const amz = p.amz ?? amzDate(T0);
  const date8 = p.credDate ?? amz.slice(0, 8);
  const signed = p.signedHeaders ?? 'host';
  const pairs: [string, string][] = [
    ...(p.extra ?? []),
    ['X-Amz-Algorithm', 'AWS4-HMAC-SHA256'],
    ['X-Amz-Content-Sha256', UNSIGNED_PAYLOAD],
    [
      'X-Amz-Credential',
      `${p.accessKeyId ?? creds.accessKeyId}/${credentialScope(date8, 'us-east-1', 's3')}`,
    ],
    ['X-Amz-Date', amz],
    ['X-Amz-Expires', p.expires ?? '900'],
    ['X-Amz-SignedHeaders', signed],
  ];
  const cq = canonicalQuery(pairs);
  const headers: Record<string, string> = { host };
  const creq = canonicalRequest({
    method,
    uri: canonicalUri(path, 's3'),
    query: cq,
    headers,
    signedHeaders: signed.split(';'),
    payloadHash: UNSIGNED_PAYLOAD,
  });
  const sig = signatureHex(
    signingKey(p.secret ?? creds.secretAccessKey, date8, 'us-east-1', 's3'),
    stringToSign(amz, credentialScope(date8, 'us-east-1', 's3'), creq),
  );
  return { method, url: `${path}?${cq}&X-Amz-Signature=${sig}`, headers };
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof AuthError) return err.s3Code;
    throw err;
  }
  return 'ACCEPTED';
}

describe('verification refuses', () => {
  it('accepts the baseline it mutates (so every refusal below is the mutation)', () => {
    const r = signRaw({});
    const v = verifyRequest(r, opts());
    expect(v.path).toBe('/bucket/dir/obj.txt');
    expect(v.expiresAt).toBe(T0 + 900_000);
  });

  it('a changed character in the path, the method swapped, host or port changed', () => {
    const r = signRaw({});
    expect(refusal(() => verifyRequest({ ...r, url: r.url.replace('obj', 'obk') }, opts()))).toBe(
      'SignatureDoesNotMatch',
    );
    expect(refusal(() => verifyRequest({ ...r, method: 'PUT' }, opts()))).toBe(
      'SignatureDoesNotMatch',
    );
    expect(
      refusal(() => verifyRequest({ ...r, headers: { host: '127.0.0.2:9000' } }, opts())),
    ).toBe('SignatureDoesNotMatch');
    expect(
      refusal(() => verifyRequest({ ...r, headers: { host: '127.0.0.1:9001' } }, opts())),
    ).toBe('SignatureDoesNotMatch');
    expect(
      refusal(() => verifyRequest({ ...r, url: r.url.replace('/dir/', '/dir/../') }, opts())),
    ).toBe('SignatureDoesNotMatch');
  });

  it('one changed character anywhere signed: every position of the URL, host and auth headers', () => {
    // A real change at each position: letters and digits step to the next one (a hex digit
    // of an escape becomes another byte or an invalid escape, never the same byte in another
    // case), anything else becomes `x`.
    const change = (c: string) => {
      if (c >= 'a' && c <= 'z') return c === 'z' ? 'a' : String.fromCharCode(c.charCodeAt(0) + 1);
      if (c >= 'A' && c <= 'Z') return c === 'Z' ? 'A' : String.fromCharCode(c.charCodeAt(0) + 1);
      if (c >= '0' && c <= '9') return String((Number(c) + 1) % 10);
      return 'x';
    };
    const at = (s: string, i: number) => s.slice(0, i) + change(s[i]!) + s.slice(i + 1);
    const verdicts = new Map<string, number>();
    const count = (v: string) => verdicts.set(v, (verdicts.get(v) ?? 0) + 1);
    // Query form: a presigned URL with a key that needs escapes, and a signed header.
    const url = new URL(
      presignObject({
        endpoint: `http://${HOST}`,
        bucket: 'bkt',
        key: 'dir/a b+c=d&é.txt',
        method: 'PUT',
        expiresIn: 900,
        credentials: creds,
        region: 'us-east-1',
        date: T0,
        headers: { 'content-type': 'video/mp4' },
      }),
    );
    const base = {
      method: 'PUT',
      url: `${url.pathname}${url.search}`,
      headers: { host: HOST, 'content-type': 'video/mp4' },
    };
    expect(refusal(() => verifyRequest(base, opts()))).toBe('ACCEPTED');
    for (let i = 0; i < base.url.length; i++) {
      count(refusal(() => verifyRequest({ ...base, url: at(base.url, i) }, opts())));
    }
    for (const h of ['host', 'content-type'] as const) {
      for (let i = 0; i < base.headers[h].length; i++) {
        const headers = { ...base.headers, [h]: at(base.headers[h], i) };
        count(refusal(() => verifyRequest({ ...base, headers }, opts())));
      }
    }
    for (let i = 0; i < base.method.length; i++) {
      count(refusal(() => verifyRequest({ ...base, method: at(base.method, i) }, opts())));
    }
    // Header form: every character of the Authorization header and of each signed header.
    const sh = signHeaders({
      method: 'PUT',
      path: s3ObjectPath('bkt', 'dir/a b+c=d&é.txt'),
      host: HOST,
      headers: { 'content-length': '11' },
      credentials: creds,
      region: 'us-east-1',
      date: T0,
    });
    const hb: Record<string, string> = {
      host: HOST,
      'content-length': '11',
      'x-amz-date': sh['x-amz-date'],
      'x-amz-content-sha256': sh['x-amz-content-sha256']!,
      authorization: sh.authorization,
    };
    const hreq = { method: 'PUT', url: s3ObjectPath('bkt', 'dir/a b+c=d&é.txt'), headers: hb };
    expect(refusal(() => verifyRequest(hreq, opts()))).toBe('ACCEPTED');
    for (const h of Object.keys(hb)) {
      for (let i = 0; i < hb[h]!.length; i++) {
        const headers = { ...hb, [h]: at(hb[h]!, i) };
        count(refusal(() => verifyRequest({ ...hreq, headers }, opts())));
      }
    }
    for (let i = 0; i < hreq.url.length; i++) {
      count(refusal(() => verifyRequest({ ...hreq, url: at(hreq.url, i) }, opts())));
    }
    expect(verdicts.get('ACCEPTED')).toBeUndefined();
    const positions =
      base.url.length +
      HOST.length +
      'video/mp4'.length +
      'PUT'.length +
      Object.values(hb).reduce((n, v) => n + v.length, 0) +
      hreq.url.length;
    expect([...verdicts.values()].reduce((a, b) => a + b, 0)).toBe(positions);
    expect(positions).toBeGreaterThan(600);
  });

  it('extra or duplicated query parameters', () => {
    const r = signRaw({});
    expect(refusal(() => verifyRequest({ ...r, url: `${r.url}&x-id=PutObject` }, opts()))).toBe(
      'SignatureDoesNotMatch',
    );
    expect(refusal(() => verifyRequest({ ...r, url: `${r.url}&X-Amz-Expires=900` }, opts()))).toBe(
      'AccessDenied',
    );
    expect(refusal(() => verifyRequest({ ...r, url: `${r.url}&` }, opts()))).toBe('InvalidURI');
    const sig = /X-Amz-Signature=([0-9a-f]+)/.exec(r.url)![1]!;
    expect(
      refusal(() => verifyRequest({ ...r, url: `${r.url}&X-Amz-Signature=${sig}` }, opts())),
    ).toBe('AccessDenied');
  });

  it('expiry 0, -1, 604801, 1e3, +60, 60.0, 0x3c, empty, non-numeric (each correctly signed)', () => {
    for (const e of ['0', '-1', '604801', '1e3', '+60', '60.0', '0x3c', '', 'abc', ' 60', '060']) {
      expect([e, refusal(() => verifyRequest(signRaw({ expires: e }), opts()))]).toEqual([
        e,
        'AuthorizationQueryParametersError',
      ]);
      expect(Number.isNaN(parseExpires(e))).toBe(true);
    }
    expect(refusal(() => verifyRequest(signRaw({ expires: '604800' }), opts()))).toBe('ACCEPTED');
    expect(refusal(() => verifyRequest(signRaw({ expires: '1' }), opts(T0)))).toBe('ACCEPTED');
  });

  it('expired by one second (and accepted at the last valid second)', () => {
    const r = signRaw({ expires: '60' });
    expect(refusal(() => verifyRequest(r, opts(T0 + 60_000)))).toBe('ACCEPTED');
    expect(refusal(() => verifyRequest(r, opts(T0 + 61_000)))).toBe('AccessDenied');
  });

  it('dated 16 minutes ahead (14 minutes ahead tolerated as clock skew)', () => {
    expect(
      refusal(() => verifyRequest(signRaw({ amz: amzDate(T0 + 16 * 60_000) }), opts(T0))),
    ).toBe('RequestTimeTooSkewed');
    expect(
      refusal(() => verifyRequest(signRaw({ amz: amzDate(T0 + 14 * 60_000) }), opts(T0))),
    ).toBe('ACCEPTED');
  });

  it('credential date not matching X-Amz-Date; an impossible date', () => {
    expect(refusal(() => verifyRequest(signRaw({ credDate: '20260101' }), opts()))).toBe(
      'SignatureDoesNotMatch',
    );
    expect(refusal(() => verifyRequest(signRaw({ amz: '20260230T000000Z' }), opts()))).toBe(
      'AccessDenied',
    );
  });

  it('an unknown access key, even when signed with its own secret', () => {
    expect(
      refusal(() => verifyRequest(signRaw({ accessKeyId: 'AKIDUNKNOWN', secret: 'x' }), opts())),
    ).toBe('InvalidAccessKeyId');
  });

  it('SignedHeaders without host (query and header forms)', () => {
    const r = signRaw({ signedHeaders: 'x-amz-date' });
    expect(
      refusal(() => verifyRequest({ ...r, headers: { host: HOST, 'x-amz-date': 'x' } }, opts())),
    ).toBe('AccessDenied');
    const h = signHeaders({
      method: 'GET',
      path: '/b/k',
      host: HOST,
      credentials: creds,
      region: 'us-east-1',
      date: T0,
    });
    const auth = h.authorization.replace('SignedHeaders=host;', 'SignedHeaders=');
    const headers = {
      host: HOST,
      'x-amz-date': h['x-amz-date'],
      'x-amz-content-sha256': UNSIGNED_PAYLOAD,
      authorization: auth,
    };
    expect(refusal(() => verifyRequest({ method: 'GET', url: '/b/k', headers }, opts()))).toBe(
      'AccessDenied',
    );
  });

  it('header form: accepted when fresh, refused when skewed by more than 15 minutes', () => {
    const h = signHeaders({
      method: 'PUT',
      path: '/b/k',
      host: HOST,
      credentials: creds,
      region: 'us-east-1',
      date: T0,
    });
    const headers = {
      host: HOST,
      'x-amz-date': h['x-amz-date'],
      'x-amz-content-sha256': UNSIGNED_PAYLOAD,
      authorization: h.authorization,
    };
    expect(
      refusal(() => verifyRequest({ method: 'PUT', url: '/b/k', headers }, opts(T0 + 60_000))),
    ).toBe('ACCEPTED');
    expect(
      refusal(() => verifyRequest({ method: 'PUT', url: '/b/k', headers }, opts(T0 + 16 * 60_000))),
    ).toBe('RequestTimeTooSkewed');
    expect(
      refusal(() => verifyRequest({ method: 'PUT', url: '/b/k', headers }, opts(T0 - 16 * 60_000))),
    ).toBe('RequestTimeTooSkewed');
    expect(refusal(() => verifyRequest({ method: 'PUT', url: '/b/k2', headers }, opts()))).toBe(
      'SignatureDoesNotMatch',
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Fuzz: single-field mutations of valid presigned URLs

interface Req {
  method: string;
  host: string;
  path: string;
  params: [string, string][];
}

function serialize(r: Req) {
  const enc = (s: string) =>
    encodeURIComponent(s).replace(
      /[!'()*]/g,
      (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
    );
  const q = r.params.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&');
  return { method: r.method, url: `${r.path}?${q}`, headers: { host: r.host } };
}

function mutateString(s: string, kind: number, pos: number, ch: string): string {
  const i = s.length === 0 ? 0 : pos % (s.length + (kind === 1 ? 1 : 0));
  switch (kind) {
    case 0: {
      // replace one character with a different one
      if (s.length === 0) return ch;
      const old = s[i]!;
      const rep = ch === old ? (old === 'a' ? 'b' : 'a') : ch;
      return s.slice(0, i) + rep + s.slice(i + 1);
    }
    case 1:
      return s.slice(0, i) + ch + s.slice(i);
    default:
      return s.length === 0 ? ch : s.slice(0, i) + s.slice(i + 1);
  }
}

describe('fuzz: single-field mutations of valid presigned URLs', () => {
  const scale = Number(process.env.CDP_FAULT_SCALE ?? '1');
  const runs = Math.max(1, Math.round(100_000 * scale));

  it(
    `at least ${runs} mutations, zero accepted`,
    () => {
      const base = (key: string, method: string): Req => {
        const url = new URL(
          presignObject({
            endpoint: `http://${HOST}`,
            bucket: 'bkt',
            key,
            method,
            expiresIn: 3600,
            credentials: creds,
            region: 'us-east-1',
            date: T0,
          }),
        );
        const params: [string, string][] = [];
        for (const [k, v] of url.searchParams) params.push([k, v]);
        return { method, host: HOST, path: url.pathname, params };
      };
      // Baselines verify; each mutation must not.
      const bases = [base('dir/file.txt', 'GET'), base('a b/+=&/é', 'PUT'), base('x', 'DELETE')];
      for (const b of bases)
        expect(verifyRequest(serialize(b), opts()).accessKeyId).toBe(creds.accessKeyId);
      let accepted = 0;
      let tried = 0;
      const fields = [
        'method',
        'host',
        'path',
        'paramName',
        'paramValue',
        'dupParam',
        'extraParam',
        'dropParam',
      ] as const;
      fc.assert(
        fc.property(
          fc.nat(bases.length - 1),
          fc.constantFrom(...fields),
          fc.nat(50),
          fc.nat(2),
          fc.nat(200),
          fc.constantFrom('a', 'Z', '0', '9', '/', '.', '%', '+', ' ', '=', '&', 'é', '-', 'f'),
          (bi, field, which, kind, pos, ch) => {
            const b = bases[bi]!;
            const r: Req = { ...b, params: b.params.map(([k, v]) => [k, v] as [string, string]) };
            const pi = which % r.params.length;
            switch (field) {
              case 'method':
                r.method = ['GET', 'PUT', 'POST', 'DELETE', 'HEAD'].filter((m) => m !== b.method)[
                  which % 4
                ]!;
                break;
              case 'host':
                r.host = mutateString(r.host, kind, pos, ch);
                // HTTP strips surrounding whitespace from header values: not a change on the wire.
                if (r.host.trim() === b.host) return true;
                break;
              case 'path': {
                const decoded = decodeURIComponent(r.path);
                const mutated = mutateString(decoded, kind, pos, ch);
                if (mutated === decoded) return true;
                r.path = mutated
                  .split('/')
                  .map((seg) => encodeURIComponent(seg))
                  .join('/');
                if (!r.path.startsWith('/')) r.path = `/${r.path}`;
                if (decodeURIComponent(r.path) === decoded) return true;
                break;
              }
              case 'paramName':
                r.params[pi]![0] = mutateString(r.params[pi]![0], kind, pos, ch);
                break;
              case 'paramValue':
                r.params[pi]![1] = mutateString(r.params[pi]![1], kind, pos, ch);
                break;
              case 'dupParam':
                r.params.push([...r.params[pi]!]);
                break;
              case 'extraParam':
                r.params.push([mutateString('x-extra', 0, pos, ch), 'v']);
                break;
              case 'dropParam':
                r.params.splice(pi, 1);
                break;
            }
            tried++;
            let ok = false;
            try {
              verifyRequest(serialize(r), opts());
              ok = true;
            } catch (err) {
              if (!(err instanceof AuthError)) throw err;
            }
            if (ok) accepted++;
            return !ok;
          },
        ),
        // A few generated cases are no change at all (skipped): run enough to try `runs`.
        { numRuns: Math.ceil(runs * 1.02), seed: 42 },
      );
      expect(accepted).toBe(0);
      expect(tried).toBeGreaterThanOrEqual(runs);
      console.log(`sigv4 fuzz: ${tried} mutations verified, ${accepted} accepted`);
    },
    60_000 + runs,
  );
});

describe('isCanonicalEncoded (the verifier reuses raw text it says is canonical)', () => {
  const rawArb = fc
    .array(
      fc.constantFrom(
        'a',
        'Z',
        '0',
        '-',
        '.',
        '_',
        '~',
        '/',
        '%',
        '2',
        'F',
        'f',
        'E',
        'C',
        '3',
        '+',
        ' ',
        'é',
        '%2F',
        '%41',
        '%20',
        '%C3%A9',
        '%c3%a9',
        '%E2%82%AC',
        '%7E',
        '%2f',
        '%',
      ),
      { maxLength: 12 },
    )
    .map((p) => p.join(''));

  it('says yes exactly when decoding and encoding again gives the same text', () => {
    fc.assert(
      fc.property(rawArb, fc.boolean(), (raw, keepSlash) => {
        let decoded: string;
        try {
          decoded = decodeURIComponent(raw);
        } catch {
          return; // the verifier refuses text that does not decode before asking
        }
        expect(isCanonicalEncoded(raw, keepSlash)).toBe(uriEncode(decoded, keepSlash) === raw);
      }),
      { numRuns: 5000, seed: 11 },
    );
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.boolean(), (s, keepSlash) => {
        expect(isCanonicalEncoded(uriEncode(s, keepSlash), keepSlash)).toBe(true);
      }),
      { numRuns: 2000, seed: 12 },
    );
  });
});

describe('derived signing key cache', () => {
  it('always equals the uncached HMAC chain, whatever the order of secrets, dates and regions', () => {
    const chain = (secret: string, d: string, region: string, service: string) => {
      const kDate = createHmac('sha256', `AWS4${secret}`).update(d).digest();
      const kRegion = createHmac('sha256', kDate).update(region).digest();
      const kService = createHmac('sha256', kRegion).update(service).digest();
      return createHmac('sha256', kService).update('aws4_request').digest('hex');
    };
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.constantFrom('s1', 's2', 's3', 'c2VjcmV0+/key'),
            fc.constantFrom('20260101', '20260102', '20260103'),
            fc.constantFrom('us-east-1', 'eu-west-1'),
            fc.constantFrom('s3', 'iam'),
          ),
          { minLength: 1, maxLength: 40 },
        ),
        (calls) => {
          for (const [secret, d, region, service] of calls) {
            expect(signingKey(secret, d, region, service).toString('hex')).toBe(
              chain(secret, d, region, service),
            );
          }
        },
      ),
      { numRuns: 300, seed: 7 },
    );
  });
});

describe('presign() shape', () => {
  it('puts signed headers (content-length) into SignedHeaders and keeps the URL sorted', () => {
    const p = presign({
      method: 'PUT',
      host: HOST,
      path: '/b/k',
      headers: { 'Content-Length': '10' },
      credentials: creds,
      region: 'us-east-1',
      date: T0,
      expiresIn: 60,
      protocol: 'http:',
    });
    expect(p.url).toContain('X-Amz-SignedHeaders=content-length%3Bhost');
    const names = new URL(p.url).search
      .slice(1)
      .split('&')
      .map((kv) => kv.split('=')[0]!);
    expect([...names].sort()).toEqual(names);
    const q = new URL(p.url);
    const v = verifyRequest(
      {
        method: 'PUT',
        url: `${q.pathname}${q.search}`,
        headers: { host: HOST, 'content-length': '10' },
      },
      opts(),
    );
    expect(v.signedHeaders).toEqual(['content-length', 'host']);
    expect(
      refusal(() =>
        verifyRequest(
          {
            method: 'PUT',
            url: `${q.pathname}${q.search}`,
            headers: { host: HOST, 'content-length': '11' },
          },
          opts(),
        ),
      ),
    ).toBe('SignatureDoesNotMatch');
  });
});
