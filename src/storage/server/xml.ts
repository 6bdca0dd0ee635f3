/** The XML the storage server writes: escaping, the S3 namespace, dates. */

export const XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';

export function xmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function httpDate(ms: number): string {
  return new Date(ms).toUTCString();
}

export function isoDate(ms: number): string {
  return new Date(ms).toISOString();
}
