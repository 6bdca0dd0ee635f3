/**
 * Operations on a bucket: create, head, delete, and the bucket sub-resources the server
 * answers: ?acl (a fixed private ACL), ?versioning (unversioned), ?location.
 */
import { StorageError } from '../storage-error.js';
import { notFoundBucket } from './buckets.js';
import { type Authed, drain, sendXml } from './context.js';
import { OWNER, XMLNS } from './xml.js';
import { child, children, readXml, text } from './xml-body.js';

export async function createBucket(c: Authed) {
  await drain(c.req);
  await c.env.buckets.create(c.b);
  c.res.writeHead(200, { Location: `/${c.b}`, 'Content-Length': 0 }).end();
}

export async function headBucket(c: Authed) {
  if (!(await c.env.buckets.exists(c.b))) throw notFoundBucket(c.b);
  c.res.writeHead(200, { 'x-amz-bucket-region': c.env.region }).end();
}

export async function deleteBucket(c: Authed) {
  await c.env.buckets.remove(c.b);
  c.res.writeHead(204).end();
}

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

export async function getBucketAcl(c: Authed) {
  if (!(await c.env.buckets.exists(c.b))) throw notFoundBucket(c.b);
  sendXml(c, 200, privateAcl());
}

export async function putBucketAcl(c: Authed) {
  if (!(await c.env.buckets.exists(c.b))) throw notFoundBucket(c.b);
  await checkPrivateAcl(c);
  c.res.writeHead(200, { 'Content-Length': 0 }).end();
}

export async function getBucketVersioning(c: Authed) {
  if (!(await c.env.buckets.exists(c.b))) throw notFoundBucket(c.b);
  sendXml(c, 200, `<VersioningConfiguration xmlns="${XMLNS}"/>`);
}

/** us-east-1 is reported as an empty LocationConstraint, as S3 does. */
export async function getBucketLocation(c: Authed) {
  if (!(await c.env.buckets.exists(c.b))) throw notFoundBucket(c.b);
  const r = c.env.region === 'us-east-1' ? '' : c.env.region;
  sendXml(c, 200, `<LocationConstraint xmlns="${XMLNS}">${r}</LocationConstraint>`);
}
