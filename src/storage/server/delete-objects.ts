/**
 * DeleteObjects (`POST /<bucket>?delete`): up to 1,000 keys in one request, each authorized as
 * a DeleteObject of its own; `Quiet` answers only the failures.
 */
import { validateKey } from '../internal/keys.js';
import { StorageError } from '../storage-error.js';
import { checkBodyDigests } from './checksums.js';
import { type Authed, sendXml } from './context.js';
import { XMLNS, xmlEscape, xmlRepresentable } from './xml.js';
import { children, readXml, text } from './xml-body.js';

export async function deleteObjects(c: Authed) {
  const s = await c.env.buckets.store(c.b);
  const { root, body, raw } = await readXml(c.req, 2 * 1024 * 1024);
  checkBodyDigests(c.req.headers, raw);
  if (root !== 'Delete')
    throw new StorageError('MalformedXML', 400, 'the body must be a Delete document');
  const objects = children(body, 'Object');
  if (objects.length === 0 || objects.length > 1000)
    throw new StorageError('MalformedXML', 400, 'list 1 to 1000 Object elements');
  const quiet = (text(body, 'Quiet') ?? 'false').toLowerCase() === 'true';
  // The answer names each key: one XML cannot carry is refused before anything is deleted.
  if (objects.some((o) => !xmlRepresentable(text(o, 'Key') ?? ''))) {
    throw new StorageError(
      'InvalidArgument',
      400,
      'a key holds a control character no object can have; nothing was deleted',
    );
  }
  let out = '';
  for (const o of objects) {
    const key = text(o, 'Key') ?? '';
    try {
      validateKey(key);
      const v = text(o, 'VersionId');
      if (v !== undefined && v !== 'null')
        throw new StorageError('NotImplemented', 501, 'this server keeps no versions');
      await c.env.keys.authorize?.({
        accessKeyId: c.auth.accessKeyId,
        op: 'DeleteObject',
        method: 'DELETE',
        bucket: c.b,
        key,
        clientIp: c.clientIp,
        auth: c.auth,
        contentLength: undefined,
        sizeSigned: false,
      });
      await s.delete(key);
      if (!quiet) out += `<Deleted><Key>${xmlEscape(key)}</Key></Deleted>`;
    } catch (err) {
      if (!(err instanceof StorageError) || (err.status >= 500 && err.s3Code !== 'NotImplemented'))
        throw err;
      out += `<Error><Key>${xmlEscape(key)}</Key><Code>${err.s3Code}</Code><Message>${xmlEscape(err.message)}</Message></Error>`;
    }
  }
  sendXml(c, 200, `<DeleteResult xmlns="${XMLNS}">${out}</DeleteResult>`);
}
