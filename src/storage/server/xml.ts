/** The XML the storage server writes: escaping, the S3 namespace, dates. */

export const XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';

/** The owner every bucket and object reports (the server has one account). */
export const OWNER = { id: 'cdp', displayName: 'cdp' };

/**
 * Escape text for XML element content. Tab, LF and CR become character references, so a
 * parser gives them back as they are (a bare CR would be read as LF).
 */
export function xmlEscape(s: string): string {
  return s.replace(/[&<>"'\t\n\r]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * True when every character of `s` can appear in an XML 1.0 document: not the C0 controls
 * other than tab, LF and CR, not U+FFFE/U+FFFF, not a lone surrogate.
 */
export function xmlRepresentable(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return false;
    if (c === 0xfffe || c === 0xffff) return false;
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return false;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return false;
  }
  return true;
}

export function httpDate(ms: number): string {
  return new Date(ms).toUTCString();
}

export function isoDate(ms: number): string {
  return new Date(ms).toISOString();
}
