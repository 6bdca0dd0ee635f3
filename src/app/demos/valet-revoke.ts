import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ValetKeyService } from '../../storage/index.js';
import type { Demo } from '../feature.js';

const SIZE = 2 * 1024 * 1024;
const CHUNK = 128 * 1024;

/**
 * A valet key revoked while a download runs: a player fetches an object through a presigned
 * GET in ranges of 128 KB, pausing between them as a video player does; the key is revoked
 * after the fourth range, and the next range, and any later request with the URL, is refused
 * with 403 by the storage server. The object and both keys are the demonstration's own.
 */
export function valetRevokeDemo(valet: ValetKeyService, bucket: string): Demo {
  return {
    id: 'valet-revoke',
    title: 'Valet key revoked while a download runs',
    description:
      'Uploads a 2 MiB object with a short-lived PUT key, then streams it through a presigned GET in 128 KiB ranges, like a video player. After four ranges the key is revoked: the storage server refuses the next range and every later request with 403, while the application never carried a byte of the object.',
    feature: 'media',
    async run() {
      const objectKey = `demo/revoke-${randomUUID()}.bin`;
      const body = randomBytes(SIZE);
      const put = await valet.issue({ bucket, key: objectKey, methods: ['PUT'], expiresIn: 60 });
      const up = await fetch(
        valet.presignUrl(put, { method: 'PUT', contentLength: body.length, expiresIn: 60 }),
        { method: 'PUT', body },
      );
      if (!up.ok) throw new Error(`the demo upload was refused by storage: ${up.status}`);
      await valet.revoke(put.keyId);
      const get = await valet.issue({ bucket, key: objectKey, methods: ['GET'], expiresIn: 300 });
      const url = valet.presignUrl(get, { method: 'GET', expiresIn: 300 });
      const steps = [
        `uploaded ${SIZE.toLocaleString('en-US')} bytes straight to storage with a PUT key (then revoked it)`,
        `issued GET key ${get.keyId} and started reading in ranges of ${CHUNK / 1024} KiB`,
      ];
      let received = 0;
      let ranges = 0;
      let refusedStatus = 0;
      let revokedAfter = 0;
      for (let from = 0; from < SIZE; from += CHUNK) {
        if (ranges === 4) {
          await valet.revoke(get.keyId);
          revokedAfter = received;
          steps.push(`revoked ${get.keyId} after ${received.toLocaleString('en-US')} bytes`);
        }
        const r = await fetch(url, { headers: { range: `bytes=${from}-${from + CHUNK - 1}` } });
        if (r.status !== 206 && r.status !== 200) {
          refusedStatus = r.status;
          await r.body?.cancel();
          steps.push(`the next range was refused by the storage server: HTTP ${r.status}`);
          break;
        }
        received += (await r.arrayBuffer()).byteLength;
        ranges++;
        await sleep(100);
      }
      const later = await fetch(url);
      await later.body?.cancel();
      steps.push(`a fresh request with the same URL: HTTP ${later.status}`);
      return {
        ok: refusedStatus === 403 && later.status === 403 && received === revokedAfter,
        summary:
          refusedStatus === 403
            ? `the download stopped at ${received.toLocaleString('en-US')} of ${SIZE.toLocaleString('en-US')} bytes: after revocation the storage server refused the next range and the URL with 403.`
            : `the download was not cut by the revocation (status ${refusedStatus || 'none'}).`,
        figures: [
          { label: 'object size', value: SIZE, unit: 'B' },
          { label: 'bytes received before revocation', value: revokedAfter, unit: 'B' },
          { label: 'bytes received in all', value: received, unit: 'B' },
          { label: 'next range after revocation', value: refusedStatus || 'not refused' },
          { label: 'same URL later', value: later.status },
        ],
        steps,
      };
    },
  };
}
