/**
 * ACLs: the server has one account, so every bucket and object has the same private ACL (the
 * owner has full control, nobody else anything). Reads return it; writes of it are accepted
 * and change nothing; any other ACL is 501.
 */
import { StorageError } from '../storage-error.js';
import { type Authed, drain } from './context.js';
import { OWNER, XMLNS } from './xml.js';
import { child, children, readXml, text } from './xml-body.js';

/** The one ACL every bucket and object has: the owner has full control, nobody else anything. */
export function privateAcl(): string {
  return `<AccessControlPolicy xmlns="${XMLNS}"><Owner><ID>${OWNER.id}</ID><DisplayName>${OWNER.displayName}</DisplayName></Owner><AccessControlList><Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>${OWNER.id}</ID><DisplayName>${OWNER.displayName}</DisplayName></Grantee><Permission>FULL_CONTROL</Permission></Grant></AccessControlList></AccessControlPolicy>`;
}

/**
 * PutBucketAcl and PutObjectAcl: the private ACL (the canned `x-amz-acl: private`, or a
 * policy granting FULL_CONTROL to the owner only) is what every resource has already, so it is
 * accepted and changes nothing. Any other ACL is 501 NotImplemented: the server has one
 * account and no sharing by ACL.
 */
export async function checkPrivateAcl(c: Authed): Promise<void> {
  const refuse = (what: string) =>
    new StorageError(
      'NotImplemented',
      501,
      `${what}: only the private ACL is supported (this server has one account); nothing was changed`,
    );
  for (const h of Object.keys(c.req.headers)) {
    if (h.startsWith('x-amz-grant-')) throw refuse(`the ${h} header`);
  }
  const canned = c.req.headers['x-amz-acl'];
  if (canned !== undefined && canned !== 'private') throw refuse(`the canned ACL ${canned}`);
  const hasBody =
    c.req.headers['transfer-encoding'] !== undefined ||
    Number(c.req.headers['content-length'] ?? 0) > 0;
  if (!hasBody) {
    await drain(c.req);
    if (canned === undefined)
      throw new StorageError(
        'MissingSecurityHeader',
        400,
        'send x-amz-acl: private or an AccessControlPolicy body',
      );
    return;
  }
  const { root, body } = await readXml(c.req, 64 * 1024);
  if (root !== 'AccessControlPolicy')
    throw new StorageError('MalformedACLError', 400, 'the body must be an AccessControlPolicy');
  const grants = children(child(body, 'AccessControlList'), 'Grant');
  const ownerOnly =
    grants.length > 0 &&
    grants.every(
      (g) =>
        text(g, 'Permission') === 'FULL_CONTROL' && text(child(g, 'Grantee'), 'ID') === OWNER.id,
    );
  if (!ownerOnly) throw refuse('an ACL granting to others');
}
