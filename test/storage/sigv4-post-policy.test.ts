import { describe, expect, it } from 'vitest';
import {
  checkPostSize,
  createPostPolicy,
  signPolicy,
  verifyPostForm,
} from '../../src/storage/sigv4/post-policy.js';
import { AuthError } from '../../src/storage/storage-error.js';

describe('POST policy: the S3 API reference example (sigv4-post-example)', () => {
  it('signs the documented policy to the documented signature', () => {
    const policy = [
      '{ "expiration": "2015-12-30T12:00:00.000Z",',
      '  "conditions": [',
      '    {"bucket": "sigv4examplebucket"},',
      '    ["starts-with", "$key", "user/user1/"],',
      '    {"acl": "public-read"},',
      '    {"success_action_redirect": "http://sigv4examplebucket.s3.amazonaws.com/successful_upload.html"},',
      '    ["starts-with", "$Content-Type", "image/"],',
      '    {"x-amz-meta-uuid": "14365123651274"},',
      '    {"x-amz-server-side-encryption": "AES256"},',
      '    ["starts-with", "$x-amz-meta-tag", ""],',
      '',
      '    {"x-amz-credential": "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request"},',
      '    {"x-amz-algorithm": "AWS4-HMAC-SHA256"},',
      '    {"x-amz-date": "20151229T000000Z" }',
      '  ]',
      '}',
    ].join('\r\n');
    const b64 = Buffer.from(policy).toString('base64');
    expect(b64.startsWith('eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0K')).toBe(
      true,
    );
    const sig = signPolicy(
      b64,
      'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      '20151229',
      'us-east-1',
    );
    expect(sig).toBe('8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e');
    // and our verifier accepts the documented form
    const v = verifyPostForm(
      [
        ['key', 'user/user1/photo.jpg'],
        ['acl', 'public-read'],
        [
          'success_action_redirect',
          'http://sigv4examplebucket.s3.amazonaws.com/successful_upload.html',
        ],
        ['Content-Type', 'image/jpeg'],
        ['x-amz-meta-uuid', '14365123651274'],
        ['x-amz-server-side-encryption', 'AES256'],
        ['X-Amz-Credential', 'AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request'],
        ['X-Amz-Algorithm', 'AWS4-HMAC-SHA256'],
        ['X-Amz-Date', '20151229T000000Z'],
        ['x-amz-meta-tag', ''],
        ['Policy', b64],
        ['X-Amz-Signature', sig],
      ],
      {
        bucket: 'sigv4examplebucket',
        region: 'us-east-1',
        now: Date.parse('2015-12-29T01:00:00Z'),
        lookup: (id) =>
          id === 'AKIAIOSFODNN7EXAMPLE'
            ? { secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' }
            : undefined,
      },
    );
    expect(v.key).toBe('user/user1/photo.jpg');
    expect(v.metadata).toEqual({ uuid: '14365123651274', tag: '' });
  });
});

describe('POST policy: created and verified', () => {
  const credentials = { accessKeyId: 'AKPOST', secretAccessKey: 'post-secret' };
  const now = Date.parse('2026-03-01T10:00:00Z');
  const lookup = (id: string) => (id === 'AKPOST' ? { secretAccessKey: 'post-secret' } : undefined);
  const opts = { bucket: 'media', region: 'us-east-1', now: now + 1000, lookup };
  const policy = createPostPolicy({
    bucket: 'media',
    key: 'uploads/u1/',
    keyIsPrefix: true,
    credentials,
    region: 'us-east-1',
    now,
    expiresIn: 600,
    maxBytes: 1000,
    minBytes: 1,
    contentType: 'video/',
    fields: { 'x-amz-meta-owner': 'u1' },
  });
  const form = (over: Record<string, string> = {}, extra: [string, string][] = []) => {
    const f: [string, string][] = Object.entries({
      ...policy.fields,
      key: 'uploads/u1/clip.mp4',
      'Content-Type': 'video/mp4',
      ...over,
    });
    return [...f, ...extra];
  };
  const code = (fn: () => unknown) => {
    try {
      fn();
      return 'ACCEPTED';
    } catch (err) {
      if (err instanceof AuthError) return err.s3Code;
      throw err;
    }
  };

  it('accepts a form that satisfies the policy and reports the size bounds', () => {
    const v = verifyPostForm(form(), opts);
    expect(v).toMatchObject({ key: 'uploads/u1/clip.mp4', minBytes: 1, maxBytes: 1000 });
    expect(() => checkPostSize(v, 1000)).not.toThrow();
    expect(() => checkPostSize(v, 1001)).toThrow(/larger than 1000/);
    expect(() => checkPostSize(v, 0)).toThrow(/smaller than 1/);
  });

  it('refuses starts-with, eq and exact-match violations', () => {
    expect(code(() => verifyPostForm(form({ key: 'uploads/u2/clip.mp4' }), opts))).toBe(
      'AccessDenied',
    );
    expect(code(() => verifyPostForm(form({ 'Content-Type': 'text/html' }), opts))).toBe(
      'AccessDenied',
    );
    expect(code(() => verifyPostForm(form({ 'x-amz-meta-owner': 'u2' }), opts))).toBe(
      'AccessDenied',
    );
    expect(code(() => verifyPostForm(form(), { ...opts, bucket: 'other' }))).toBe('AccessDenied');
  });

  it('refuses fields not in the policy and duplicate fields', () => {
    expect(code(() => verifyPostForm(form({}, [['acl', 'public-read']]), opts))).toBe(
      'AccessDenied',
    );
    expect(code(() => verifyPostForm(form({}, [['KEY', 'uploads/u1/other']]), opts))).toBe(
      'InvalidArgument',
    );
    expect(code(() => verifyPostForm(form({}, [['x-ignore-note', 'anything']]), opts))).toBe(
      'ACCEPTED',
    );
  });

  it('refuses a tampered policy or signature, an expired policy, an unknown key', () => {
    const tampered = Buffer.from(
      Buffer.from(policy.fields.policy!, 'base64').toString().replace('1000', '9999999'),
    ).toString('base64');
    expect(code(() => verifyPostForm(form({ policy: tampered }), opts))).toBe(
      'SignatureDoesNotMatch',
    );
    const s = policy.fields['x-amz-signature']!;
    expect(
      code(() =>
        verifyPostForm(form({ 'x-amz-signature': (s[0] === 'a' ? 'b' : 'a') + s.slice(1) }), opts),
      ),
    ).toBe('SignatureDoesNotMatch');
    expect(code(() => verifyPostForm(form(), { ...opts, now: now + 601_000 }))).toBe(
      'AccessDenied',
    );
    expect(code(() => verifyPostForm(form(), { ...opts, lookup: () => undefined }))).toBe(
      'InvalidAccessKeyId',
    );
    expect(code(() => verifyPostForm(form(), { ...opts, now: now - 16 * 60_000 }))).toBe(
      'RequestTimeTooSkewed',
    );
  });
});
