/**
 * The storage module's public surface (issue 17, points 2 and 4): named exports only, no
 * internals, and no engine client loaded by the module's entry, statically or transitively
 * (dynamic imports included: an engine client is loaded through its subpath only).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as storage from '../../src/storage/index.js';
import { staticGraph } from '../support/static-graph.js';

const ENGINE_CLIENTS = ['pg', 'redis', '@nats-io/', 'rabbitmq-client', '@aws-sdk/', '@smithy/'];

/** Every package an entry can load at run time: static imports and `import()` alike. */
const reachable = (entry: string) => staticGraph(entry, { dynamic: true });

describe('storage public API', () => {
  it('exports by name only, and none of the helpers the adapters share', () => {
    const src = readFileSync('src/storage/index.ts', 'utf8');
    expect(src).not.toMatch(/export \*/);
    for (const internal of [
      'percentDecode',
      'utf8OrThrow',
      'uriEncode',
      'validateKey',
      'pageKeys',
      'MeasuringStream',
      'AwsChunkedDecoder',
      'readPostForm',
      'serveStorage',
      'serveStatic',
      'S3BlobStore',
    ]) {
      expect([internal, internal in storage]).toEqual([internal, false]);
    }
    for (const name of [
      'StorageServer',
      'FsBlobStore',
      'ValetKeyService',
      'presign',
      'StaticSite',
      'StorageError',
    ]) {
      expect([name, name in storage]).toEqual([name, true]);
    }
  });

  it('loads no engine client from the module entry; S3BlobStore comes from the storage/s3 subpath', () => {
    const { packages } = reachable('src/storage/index.ts');
    const clients = [...packages].filter((p) =>
      ENGINE_CLIENTS.some((c) => p === c || p.startsWith(c)),
    );
    expect(clients).toEqual([]);
    expect([...reachable('src/storage/s3.ts').packages]).toContain('@aws-sdk/client-s3');
  });
});
