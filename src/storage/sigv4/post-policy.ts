/**
 * Browser POST uploads with a SigV4-signed policy (S3 "POST Object"): the application signs a
 * policy document that bounds what the browser may send (bucket, key prefix, exact fields,
 * content-length-range); the browser posts a multipart form straight to storage.
 *
 * Verification is strict: every form field must be named by a policy condition (apart from
 * the policy, the signature, `file` and `x-ignore-*`), no field may appear twice, and the file
 * size bounds are returned so the server enforces them while streaming.
 */
import { timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { AuthError } from '../storage-error.js';
import {
  ALGORITHM,
  amzDate,
  checkExpires,
  credentialScope,
  parseAmzDate,
  type SigV4Credentials,
  signatureHex,
  signingKey,
} from './sign.js';

export type PolicyCondition =
  | Record<string, string>
  | ['eq' | 'starts-with', string, string]
  | ['content-length-range', number, number];

export interface PostPolicyDocument {
  expiration: string;
  conditions: PolicyCondition[];
}

const conditionSchema = z.union([
  z.record(z.string(), z.string()).refine((o) => Object.keys(o).length === 1, {
    message: 'an exact-match condition names one field',
  }),
  z.tuple([z.enum(['eq', 'starts-with']), z.string().startsWith('$'), z.string()]),
  z.tuple([z.literal('content-length-range'), z.number().int().min(0), z.number().int().min(0)]),
]);
const policySchema = z.object({
  expiration: z.string(),
  conditions: z.array(conditionSchema).max(64),
});

export interface CreatePostPolicyInput {
  bucket: string;
  /** Exact key, or a prefix when `keyIsPrefix` (the browser chooses the rest). */
  key: string;
  keyIsPrefix?: boolean;
  credentials: SigV4Credentials;
  region: string;
  /** Signing time, epoch ms. */
  now: number;
  expiresIn: number;
  minBytes?: number;
  maxBytes?: number;
  /** Required Content-Type prefix (`video/`), or exact type when it does not end in `/`. */
  contentType?: string;
  /** Further exact fields the browser must send (`x-amz-meta-owner`: `u1`...). */
  fields?: Record<string, string>;
}

export interface PostPolicy {
  /** Form fields to send, before the `file` field, in this order. */
  fields: Record<string, string>;
  document: PostPolicyDocument;
}

/** Sign a base64 policy: hex HMAC with the SigV4 signing key for s3. */
export function signPolicy(base64Policy: string, secret: string, date8: string, region: string) {
  return signatureHex(signingKey(secret, date8, region, 's3'), base64Policy);
}

export function createPostPolicy(p: CreatePostPolicyInput): PostPolicy {
  const expires = checkExpires(p.expiresIn);
  const amz = amzDate(p.now);
  const credential = `${p.credentials.accessKeyId}/${credentialScope(amz.slice(0, 8), p.region, 's3')}`;
  const conditions: PolicyCondition[] = [
    { bucket: p.bucket },
    p.keyIsPrefix ? ['starts-with', '$key', p.key] : { key: p.key },
    { 'x-amz-algorithm': ALGORITHM },
    { 'x-amz-credential': credential },
    { 'x-amz-date': amz },
  ];
  const fields: Record<string, string> = {
    key: p.key,
    'x-amz-algorithm': ALGORITHM,
    'x-amz-credential': credential,
    'x-amz-date': amz,
  };
  if (p.credentials.sessionToken) {
    conditions.push({ 'x-amz-security-token': p.credentials.sessionToken });
    fields['x-amz-security-token'] = p.credentials.sessionToken;
  }
  if (p.contentType !== undefined) {
    if (p.contentType.endsWith('/'))
      conditions.push(['starts-with', '$Content-Type', p.contentType]);
    else conditions.push({ 'Content-Type': p.contentType });
  }
  for (const [k, v] of Object.entries(p.fields ?? {})) {
    conditions.push({ [k]: v });
    fields[k] = v;
  }
  if (p.maxBytes !== undefined || p.minBytes !== undefined) {
    conditions.push([
      'content-length-range',
      p.minBytes ?? 0,
      p.maxBytes ?? Number.MAX_SAFE_INTEGER,
    ]);
  }
  const document: PostPolicyDocument = {
    expiration: new Date(p.now + expires * 1000).toISOString(),
    conditions,
  };
  const policy = Buffer.from(JSON.stringify(document), 'utf8').toString('base64');
  fields.policy = policy;
  fields['x-amz-signature'] = signPolicy(
    policy,
    p.credentials.secretAccessKey,
    amz.slice(0, 8),
    p.region,
  );
  return { fields, document };
}

export interface VerifiedPost {
  accessKeyId: string;
  key: string;
  /** Inclusive size bounds of the file (from content-length-range), enforced while streaming. */
  minBytes: number;
  maxBytes: number;
  contentType: string | undefined;
  /** x-amz-meta-* fields, without the prefix. */
  metadata: Record<string, string>;
  /** All form fields by lower-case name. */
  fields: Record<string, string>;
  date: number;
  expiresAt: number;
}

export interface VerifyPostOptions {
  bucket: string;
  region: string;
  now: number;
  lookup(accessKeyId: string): { secretAccessKey: string } | undefined;
  maxSkewMs?: number;
}

/** S3 substitutes the file name here; we refuse it (the policy must bound the real key). */
const FILENAME_TEMPLATE = '$' + '{filename}';

const deny = (code: string, msg: string, status = 403) => new AuthError(code, status, msg);

/**
 * Verify the fields of a POST form (everything before `file`, in order). Throws AuthError.
 */
export function verifyPostForm(
  formFields: readonly (readonly [string, string])[],
  o: VerifyPostOptions,
): VerifiedPost {
  const fields: Record<string, string> = {};
  for (const [name, value] of formFields) {
    const n = name.toLowerCase();
    if (Object.hasOwn(fields, n))
      throw deny('InvalidArgument', `form field ${name} appears twice`, 400);
    fields[n] = value;
  }
  for (const req of [
    'key',
    'policy',
    'x-amz-algorithm',
    'x-amz-credential',
    'x-amz-date',
    'x-amz-signature',
  ]) {
    if (fields[req] === undefined)
      throw deny('InvalidArgument', `form field ${req} is required`, 400);
  }
  if (fields['x-amz-algorithm'] !== ALGORITHM) {
    throw deny('InvalidArgument', `x-amz-algorithm must be ${ALGORITHM}`, 400);
  }
  const cred = fields['x-amz-credential']!.split('/');
  if (cred.length !== 5 || cred[0] === '' || cred[3] !== 's3' || cred[4] !== 'aws4_request') {
    throw deny(
      'InvalidArgument',
      'x-amz-credential must be <key>/<yyyymmdd>/<region>/s3/aws4_request',
      400,
    );
  }
  const [accessKeyId, date8, region] = cred as [string, string, string];
  if (region !== o.region)
    throw deny('InvalidArgument', `credential region must be ${o.region}`, 400);
  const amz = fields['x-amz-date']!;
  const date = parseAmzDate(amz);
  if (Number.isNaN(date)) throw deny('AccessDenied', 'x-amz-date must be yyyymmddThhmmssZ');
  if (amz.slice(0, 8) !== date8) {
    throw deny('SignatureDoesNotMatch', 'the credential date does not match x-amz-date');
  }
  if (date - o.now > (o.maxSkewMs ?? 15 * 60_000)) {
    throw deny('RequestTimeTooSkewed', 'the form is dated more than 15 minutes in the future');
  }
  const sig = fields['x-amz-signature']!;
  if (!/^[0-9a-f]{64}$/.test(sig)) throw deny('SignatureDoesNotMatch', 'malformed signature');
  const key = o.lookup(accessKeyId);
  if (!key) throw deny('InvalidAccessKeyId', 'the access key id is not known to this server');
  const expected = signPolicy(fields.policy!, key.secretAccessKey, date8, region);
  if (!timingSafeEqual(Buffer.from(expected), Buffer.from(sig))) {
    throw deny('SignatureDoesNotMatch', 'the policy signature does not match');
  }

  let doc: PostPolicyDocument;
  try {
    const json = Buffer.from(fields.policy!, 'base64').toString('utf8');
    doc = policySchema.parse(JSON.parse(json)) as PostPolicyDocument;
  } catch (err) {
    throw new AuthError('InvalidPolicyDocument', 400, 'the policy is not a valid policy document', {
      cause: err,
    });
  }
  const expiresAt = Date.parse(doc.expiration);
  if (Number.isNaN(expiresAt))
    throw deny('InvalidPolicyDocument', 'policy expiration is not a date', 400);
  if (o.now > expiresAt) throw deny('AccessDenied', 'the policy has expired; ask for a new one');

  // Every field but these must be covered by a condition.
  const exempt = new Set(['policy', 'x-amz-signature', 'file']);
  const covered = new Set<string>();
  let minBytes = 0;
  let maxBytes = Number.MAX_SAFE_INTEGER;
  let bucketChecked = false;
  const value = (name: string) => (name === 'bucket' ? o.bucket : fields[name]);
  for (const c of doc.conditions) {
    if (Array.isArray(c)) {
      if (c[0] === 'content-length-range') {
        minBytes = Math.max(minBytes, c[1]);
        maxBytes = Math.min(maxBytes, c[2]);
        continue;
      }
      const name = c[1].slice(1).toLowerCase();
      const v = value(name);
      if (v === undefined) throw deny('AccessDenied', `policy condition on ${name}: field missing`);
      if (c[0] === 'eq' ? v !== c[2] : !v.startsWith(c[2])) {
        throw deny('AccessDenied', `policy condition failed: ${c[0]} ${c[1]}`);
      }
      covered.add(name);
      if (name === 'bucket') bucketChecked = true;
    } else {
      const [name0, expected] = Object.entries(c)[0]!;
      const name = name0.toLowerCase();
      const v = value(name);
      if (v !== expected) throw deny('AccessDenied', `policy condition failed: ${name0}`);
      covered.add(name);
      if (name === 'bucket') bucketChecked = true;
    }
  }
  if (!bucketChecked) throw deny('AccessDenied', 'the policy must name the bucket');
  for (const name of Object.keys(fields)) {
    if (exempt.has(name) || name.startsWith('x-ignore-')) continue;
    if (!covered.has(name))
      throw deny('AccessDenied', `form field ${name} is not allowed by the policy`);
  }
  if (minBytes > maxBytes)
    throw deny('InvalidPolicyDocument', 'content-length-range is empty', 400);
  if (fields.key!.includes(FILENAME_TEMPLATE)) {
    throw deny(
      'InvalidArgument',
      'key templates ($' + '{filename}) are not supported; send the full key',
      400,
    );
  }
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields))
    if (k.startsWith('x-amz-meta-')) metadata[k.slice(11)] = v;
  return {
    accessKeyId,
    key: fields.key!,
    minBytes,
    maxBytes,
    contentType: fields['content-type'],
    metadata,
    fields,
    date,
    expiresAt,
  };
}

/** Check a policy's size bounds against a byte count (used at the end of the file stream). */
export function checkPostSize(v: Pick<VerifiedPost, 'minBytes' | 'maxBytes'>, bytes: number) {
  if (bytes > v.maxBytes)
    throw deny('EntityTooLarge', `the file is larger than ${v.maxBytes} bytes`, 400);
  if (bytes < v.minBytes)
    throw deny('EntityTooSmall', `the file is smaller than ${v.minBytes} bytes`, 400);
}
