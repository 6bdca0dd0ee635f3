/**
 * Browser POST uploads (`POST /<bucket>` with multipart/form-data): the form's signed policy
 * authenticates the request, the file streams into the bucket within the policy's size range.
 * The bucket is looked up after the signature is checked: an unauthenticated form learns
 * nothing about which buckets exist.
 */
import { checkPostSize, type VerifiedPost, verifyPostForm } from '../sigv4/post-policy.js';
import { type Ctx, checkNewKey, counted, sendXml } from './context.js';
import { corsHeaders } from './cors.js';
import { boundaryOf, readPostForm } from './post-form.js';
import { xmlEscape } from './xml.js';

export async function postObject(c: Ctx, bucket: string) {
  const { req, env } = c;
  const boundary = boundaryOf(req.headers['content-type']);
  const result = await readPostForm(req, boundary, async (fields, file) => {
    let v: VerifiedPost;
    try {
      const cred = fields.find(([n]) => n.toLowerCase() === 'x-amz-credential')?.[1];
      if (cred && env.keys.prepare) await env.keys.prepare(cred.split('/')[0]!);
      v = verifyPostForm(fields, {
        bucket,
        region: env.region,
        now: env.clock.now(),
        lookup: (id) => env.keys.lookup(id),
      });
    } catch (err) {
      file.body.resume();
      throw err;
    }
    c.keyId = v.accessKeyId;
    c.key = v.key;
    const decision =
      (await env.keys.authorize?.({
        accessKeyId: v.accessKeyId,
        op: 'PostObject',
        method: 'POST',
        bucket,
        key: v.key,
        clientIp: c.clientIp,
        auth: v,
        contentLength: undefined,
        sizeSigned: v.maxBytes < Number.MAX_SAFE_INTEGER,
      })) ?? {};
    const max = Math.min(v.maxBytes, decision.maxBytes ?? Number.MAX_SAFE_INTEGER);
    // Only now, authenticated, may the answer tell whether the bucket exists.
    const info = await env.buckets
      .writing(bucket, (s) => {
        checkNewKey(v.key);
        const body = counted(file.body, (n) => {
          c.bytes += n;
        });
        return s.put(v.key, body, {
          contentType: v.contentType ?? file.contentType ?? 'application/octet-stream',
          metadata: v.metadata,
          maxBytes: max,
          minBytes: v.minBytes,
        });
      })
      .catch((err) => {
        file.body.resume();
        throw err;
      });
    checkPostSize(v, info.size);
    return { info, v };
  });
  corsHeaders(c);
  const status = Number(result.v.fields.success_action_status ?? '204');
  const h = {
    ETag: `"${result.info.etag}"`,
    Location: `${env.url}/${bucket}/${encodeURI(result.info.key)}`,
  };
  if (status === 201) {
    sendXml(
      c,
      201,
      `<PostResponse><Location>${xmlEscape(h.Location)}</Location><Bucket>${xmlEscape(bucket)}</Bucket><Key>${xmlEscape(result.info.key)}</Key><ETag>"${result.info.etag}"</ETag></PostResponse>`,
    );
    return;
  }
  c.res.writeHead(status === 200 ? 200 : 204, h).end();
}
