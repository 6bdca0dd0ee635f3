/** CORS for browser clients: per-bucket rules, the headers on answers, and preflights. */
import { StorageError } from '../storage-error.js';
import type { Ctx } from './context.js';

export interface CorsRule {
  allowedOrigins: string[];
  allowedMethods: string[];
  allowedHeaders?: string[];
  exposeHeaders?: string[];
  maxAgeSeconds?: number;
}

/** Set the CORS headers on an answer when a rule of the bucket allows the origin and method. */
export function corsHeaders(c: Ctx) {
  const origin = c.req.headers.origin;
  if (!origin || !c.bucket) return;
  const rule = c.env.cors
    .get(c.bucket)
    ?.find(
      (r) =>
        r.allowedOrigins.some((o) => o === '*' || o === origin) &&
        r.allowedMethods.includes(c.req.method ?? ''),
    );
  if (!rule) return;
  c.res.setHeader('Access-Control-Allow-Origin', rule.allowedOrigins.includes('*') ? '*' : origin);
  c.res.setHeader('Vary', 'Origin');
  if (rule.exposeHeaders?.length)
    c.res.setHeader('Access-Control-Expose-Headers', rule.exposeHeaders.join(', '));
}

/** Answer an OPTIONS preflight, or refuse it (403) when no rule allows it. */
export function preflight(c: Ctx): void {
  const origin = c.req.headers.origin;
  const method = c.req.headers['access-control-request-method'];
  const reqHeaders = (c.req.headers['access-control-request-headers'] ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
  const rule = c.bucket
    ? c.env.cors
        .get(c.bucket)
        ?.find(
          (r) =>
            r.allowedOrigins.some((o) => o === '*' || o === origin) &&
            typeof method === 'string' &&
            r.allowedMethods.includes(method) &&
            reqHeaders.every((h) =>
              (r.allowedHeaders ?? []).some((a) => a === '*' || a.toLowerCase() === h),
            ),
        )
    : undefined;
  if (!origin || !rule) {
    throw new StorageError(
      'AccessForbidden',
      403,
      'CORSResponse: this CORS request is not allowed by the bucket rules',
    );
  }
  c.res.setHeader('Access-Control-Allow-Origin', rule.allowedOrigins.includes('*') ? '*' : origin);
  c.res.setHeader('Access-Control-Allow-Methods', rule.allowedMethods.join(', '));
  if (reqHeaders.length) c.res.setHeader('Access-Control-Allow-Headers', reqHeaders.join(', '));
  if (rule.maxAgeSeconds !== undefined)
    c.res.setHeader('Access-Control-Max-Age', String(rule.maxAgeSeconds));
  c.res.setHeader('Vary', 'Origin, Access-Control-Request-Headers, Access-Control-Request-Method');
  c.res.writeHead(200).end();
}
