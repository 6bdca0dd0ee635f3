/**
 * Streaming multipart/form-data reader for S3 browser POST uploads: the text fields before
 * the `file` part are collected (bounded), then the file is handed over as a stream with
 * backpressure, so a gigabyte upload never sits in memory. Parts after the file are ignored,
 * as S3 does.
 */
import { once } from 'node:events';
import { PassThrough, type Readable } from 'node:stream';
import { StorageError } from '../storage-error.js';

export interface FormFile {
  filename: string;
  contentType: string | undefined;
  body: Readable;
}

const bad = (msg: string) => new StorageError('MalformedPOSTRequest', 400, msg);

export function boundaryOf(contentType: string | undefined): string {
  const m = /^multipart\/form-data;.*\bboundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(
    contentType ?? '',
  );
  if (!m) throw bad('Content-Type must be multipart/form-data with a boundary');
  return m[1] ?? m[2]!;
}

function parsePartHeaders(raw: string): {
  name: string;
  filename: string | undefined;
  type: string | undefined;
} {
  let name: string | undefined;
  let filename: string | undefined;
  let type: string | undefined;
  for (const line of raw.split('\r\n')) {
    const i = line.indexOf(':');
    if (i < 0) throw bad('malformed part header');
    const h = line.slice(0, i).trim().toLowerCase();
    const v = line.slice(i + 1).trim();
    if (h === 'content-disposition') {
      const n = /\bname="([^"]*)"/.exec(v);
      const f = /\bfilename="([^"]*)"/.exec(v);
      if (!/^form-data\b/i.test(v) || !n)
        throw bad('each part needs Content-Disposition: form-data; name=...');
      name = n[1]!;
      filename = f?.[1];
    } else if (h === 'content-type') {
      type = v;
    }
  }
  if (name === undefined) throw bad('a part has no Content-Disposition');
  return { name, filename, type };
}

/**
 * Read `body` as multipart/form-data. `onFile` receives the fields (in order) and the file
 * stream, and must consume the stream; its result is returned once the whole form was read.
 */
export async function readPostForm<T>(
  body: AsyncIterable<Buffer>,
  boundary: string,
  onFile: (fields: [string, string][], file: FormFile) => Promise<T>,
  limits: { fieldBytes?: number } = {},
): Promise<T> {
  const delim = Buffer.from(`\r\n--${boundary}`);
  const maxFields = limits.fieldBytes ?? 64 * 1024;
  let buf: Buffer = Buffer.from('\r\n');
  const fields: [string, string][] = [];
  let fieldBytes = 0;
  const it = body[Symbol.asyncIterator]();
  let ended = false;
  const more = async (): Promise<boolean> => {
    if (ended) return false;
    const r = await it.next();
    if (r.done) {
      ended = true;
      return false;
    }
    buf = buf.length === 0 ? r.value : Buffer.concat([buf, r.value]);
    return true;
  };
  const need = async (n: number) => {
    while (buf.length < n) if (!(await more())) throw bad('the form ended early');
  };
  // Preamble up to the first delimiter.
  for (;;) {
    const i = buf.indexOf(delim);
    if (i >= 0) {
      buf = buf.subarray(i + delim.length);
      break;
    }
    if (buf.length > maxFields) throw bad('no multipart boundary found');
    if (!(await more())) throw bad('no multipart boundary found');
  }
  for (;;) {
    await need(2);
    if (buf[0] === 0x2d && buf[1] === 0x2d) throw bad('the form has no file field');
    if (buf[0] !== 0x0d || buf[1] !== 0x0a) throw bad('malformed boundary line');
    buf = buf.subarray(2);
    let he = buf.indexOf('\r\n\r\n');
    while (he < 0) {
      if (buf.length > 16 * 1024) throw bad('part headers too long');
      if (!(await more())) throw bad('the form ended early');
      he = buf.indexOf('\r\n\r\n');
    }
    const part = parsePartHeaders(buf.subarray(0, he).toString('utf8'));
    buf = buf.subarray(he + 4);
    if (part.name.toLowerCase() !== 'file') {
      let e = buf.indexOf(delim);
      while (e < 0) {
        if (buf.length > maxFields) throw bad('form fields too large');
        if (!(await more())) throw bad('the form ended early');
        e = buf.indexOf(delim);
      }
      const value = buf.subarray(0, e).toString('utf8');
      fieldBytes += e + part.name.length;
      if (fieldBytes > maxFields) throw bad('form fields too large');
      fields.push([part.name, value]);
      buf = buf.subarray(e + delim.length);
      continue;
    }
    // The file: stream until the delimiter, keeping a tail that could start it.
    const pass = new PassThrough();
    const consumer = onFile(fields, {
      filename: part.filename ?? '',
      contentType: part.type,
      body: pass,
    });
    let settledFlag = false;
    const settled = consumer.then(
      () => {
        settledFlag = true;
      },
      () => {
        settledFlag = true;
      },
    );
    const STOP = new Error('consumer stopped');
    const write = async (chunk: Buffer) => {
      if (settledFlag || pass.destroyed) throw STOP;
      if (!pass.write(chunk)) await Promise.race([once(pass, 'drain'), settled]);
    };
    const pump = async () => {
      for (;;) {
        const e = buf.indexOf(delim);
        if (e >= 0) {
          if (e > 0) await write(buf.subarray(0, e));
          buf = buf.subarray(e + delim.length);
          pass.end();
          return;
        }
        const safe = buf.length - delim.length;
        if (safe > 0) {
          const chunk = buf.subarray(0, safe);
          buf = buf.subarray(safe);
          await write(chunk);
        }
        if (!(await more())) throw bad('the form ended inside the file');
      }
    };
    try {
      await pump();
    } catch (err) {
      if (err === STOP) {
        await consumer; // rethrows the consumer's own error
        throw bad('the upload stopped early');
      }
      pass.destroy(err as Error);
      await settled;
      throw err;
    }
    const result = await consumer;
    // Drain the rest (ignored parts, epilogue).
    while (await more()) buf = Buffer.alloc(0);
    return result;
  }
}
