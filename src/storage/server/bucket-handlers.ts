/**
 * Operations on a bucket: create, head, delete, and the bucket sub-resources the server
 * answers: ?acl (a fixed private ACL), ?versioning (unversioned), ?location.
 */
import { checkPrivateAcl, privateAcl } from './acl.js';
import { notFoundBucket } from './buckets.js';
import { type Authed, drain, sendXml } from './context.js';
import { XMLNS } from './xml.js';

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
