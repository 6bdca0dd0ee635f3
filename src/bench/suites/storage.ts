/**
 * Benchmark `storage`: presign and verify throughput vs the AWS SDK, static file req/s vs
 * @fastify/static (and nginx when installed) under one keep-alive load generator running in a
 * child process, and the application's CPU per GB uploaded: direct to storage with a valet key
 * vs proxied through the application.
 */
import { spawn } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { formatUrl } from '@aws-sdk/core/util';
import { getSignedUrl, S3RequestPresigner } from '@aws-sdk/s3-request-presigner';
import { HttpRequest } from '@smithy/core/protocols';
import {
  presign,
  presignObject,
  s3ObjectPath,
  staticKeys,
  verifyRequest,
} from '../../storage/index.js';
import { type BenchSuite, interleave, opsPerSecond, result } from '../harness.js';
import {
  LoadTool,
  median,
  rps,
  runChild,
  startNginx,
  startNodeServer,
  UPLOADER,
} from './storage-load.js';

const creds = { accessKeyId: 'AKBENCH', secretAccessKey: 'bench-secret-key' };
const ENDPOINT_HOST = '127.0.0.1:9000';

class NodeSha256 {
  #h;
  constructor(secret?: string | Uint8Array) {
    this.#h = secret ? createHmac('sha256', secret) : createHash('sha256');
  }
  update(d: string | Uint8Array) {
    this.#h.update(d);
  }
  async digest() {
    return new Uint8Array(this.#h.digest());
  }
}

const suite: BenchSuite = {
  name: 'storage',
  description:
    'SigV4 presign/verify vs the AWS SDK; static req/s vs @fastify/static and nginx; app CPU per GB: valet-key upload vs proxied',
  async run(ctx) {
    const out = [];
    const rounds = ctx.quick ? 3 : 7;
    const dur = ctx.quick ? 300 : 1000;
    const date = Date.parse('2026-01-01T00:00:00Z');

    // --- presign ---------------------------------------------------------------------------
    const presigner = new S3RequestPresigner({
      credentials: creds,
      region: 'us-east-1',
      sha256: NodeSha256,
    } as unknown as ConstructorParameters<typeof S3RequestPresigner>[0]);
    const client = new S3Client({
      region: 'us-east-1',
      endpoint: `http://${ENDPOINT_HOST}`,
      forcePathStyle: true,
      credentials: creds,
    });
    const key = 'videos/course 42/lesson-1.mp4';
    const ours = () =>
      presignObject({
        endpoint: `http://${ENDPOINT_HOST}`,
        bucket: 'media',
        key,
        expiresIn: 900,
        credentials: creds,
        region: 'us-east-1',
        date,
      });
    const peerPresign = async () =>
      formatUrl(
        await presigner.presign(
          new HttpRequest({
            protocol: 'http:',
            hostname: '127.0.0.1',
            port: 9000,
            method: 'GET',
            path: s3ObjectPath('media', key),
            headers: { host: ENDPOINT_HOST },
          }),
          { signingDate: new Date(date), expiresIn: 900 },
        ),
      );
    if (ours() !== (await peerPresign()))
      throw new Error('presign outputs differ: the benchmark would compare different work');
    ctx.progress('presign: ours vs S3RequestPresigner.presign vs getSignedUrl');
    const p = await interleave(
      {
        ours: () => opsPerSecond(ours, dur),
        presigner: () => opsPerSecond(peerPresign, dur),
        getSignedUrl: () =>
          opsPerSecond(
            () =>
              getSignedUrl(client, new GetObjectCommand({ Bucket: 'media', Key: key }), {
                expiresIn: 900,
                signingDate: new Date(date),
              }),
            dur,
          ),
      },
      rounds,
    );
    client.destroy();
    const params = { key, rounds, durationMs: dur };
    out.push(
      result({
        id: 'presign.ops',
        metric: 'throughput',
        unit: 'ops/s',
        ours: Math.round(p.ours),
        peer: { name: 'S3RequestPresigner.presign', value: Math.round(p.presigner) },
        higherIsBetter: true,
        params,
      }),
    );
    out.push(
      result({
        id: 'presign.ops.vs-getsignedurl',
        metric: 'throughput',
        unit: 'ops/s',
        ours: Math.round(p.ours),
        peer: { name: 'getSignedUrl', value: Math.round(p.getSignedUrl) },
        higherIsBetter: true,
        params,
      }),
    );

    // --- verify ----------------------------------------------------------------------------
    // As the storage server does it for each request: the raw request target (path and query,
    // exactly as received) and Node's headersDistinct from a browser; parse, check the expiry
    // against the clock, look the key up among 1,000 valet keys, recompute and compare the
    // signature. 256 different URLs signed by 256 different keys, taken in turn.
    const valetKeys = Array.from({ length: 1000 }, (_, i) => ({
      accessKeyId: `cdpv_${String(i).padStart(30, '0')}`,
      secretAccessKey: createHash('sha256').update(`valet-${i}`).digest('base64url'),
    }));
    const resolver = staticKeys(valetKeys);
    const signedAt = Date.now();
    const targets = Array.from({ length: 256 }, (_, i) => {
      const u = new URL(
        presignObject({
          endpoint: `http://${ENDPOINT_HOST}`,
          bucket: 'media',
          key: `videos/course ${i}/lesson-${i % 7}.mp4`,
          expiresIn: 900,
          credentials: valetKeys[(i * 3) % valetKeys.length]!,
          region: 'us-east-1',
          date: signedAt,
        }),
      );
      return `${u.pathname}${u.search}`;
    });
    const browserHeaders = {
      host: [ENDPOINT_HOST],
      'user-agent': [
        'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36',
      ],
      accept: ['*/*'],
      'accept-encoding': ['gzip, deflate, br'],
      'accept-language': ['en-US,en;q=0.9'],
      range: ['bytes=0-'],
      connection: ['keep-alive'],
    };
    let vi = 0;
    const verifyOne = () =>
      verifyRequest(
        { method: 'GET', url: targets[vi++ & 255]!, headers: browserHeaders },
        { region: 'us-east-1', now: Date.now(), lookup: (id) => resolver.lookup(id) },
      );
    for (let i = 0; i < 256; i++) verifyOne(); // every URL must verify (throws otherwise)
    const vCpu: number[] = [];
    const v = await interleave(
      {
        ours: async () => {
          const c0 = process.cpuUsage();
          const n0 = vi;
          const ops = await opsPerSecond(verifyOne, dur);
          const c = process.cpuUsage(c0);
          // Operations per CPU-second of this single thread: what one quiet core would do.
          vCpu.push((vi - n0) / ((c.user + c.system) / 1e6));
          return ops;
        },
      },
      rounds,
    );
    out.push(
      result({
        id: 'verify.ops',
        metric: 'throughput',
        unit: 'ops/s',
        ours: Math.round(v.ours),
        higherIsBetter: true,
        params: {
          rounds,
          durationMs: dur,
          form: 'presigned GET, raw target + browser headersDistinct, 256 URLs by 256 of 1,000 keys',
          checks: 'parse, expiry vs clock, key lookup, signature (constant time)',
          opsPerCpuSecond: Math.round(median(vCpu)),
        },
      }),
    );

    // --- static ----------------------------------------------------------------------------
    const dir = await mkdtemp(join(tmpdir(), 'cdp-bench-static-'));
    await chmod(dir, 0o755); // nginx workers run as an unprivileged user
    const root = join(dir, 'site');
    await mkdir(root);
    await writeFile(join(root, '1kb.bin'), randomBytes(1024));
    await writeFile(join(root, '1mb.bin'), randomBytes(1024 * 1024));
    const sitePath = resolve('src/storage/index.ts');
    const oursSrv = await startNodeServer(
      `import { FolderSource, startStaticSite } from ${JSON.stringify(sitePath)};
      const s = await startStaticSite({ source: new FolderSource({ root: ${JSON.stringify(root)} }) });
      console.log('listening on ' + s.url);`,
      true,
    );
    const fastify = await startNodeServer(
      `import Fastify from 'fastify';
      import fastifyStatic from '@fastify/static';
      const app = Fastify({ logger: false });
      await app.register(fastifyStatic, { root: ${JSON.stringify(root)} });
      await app.listen({ port: 0, host: '127.0.0.1' });
      console.log('listening on http://127.0.0.1:' + app.server.address().port);`,
      false,
    );
    const nginx = await startNginx(root, dir).catch(() => null);
    const tool = new LoadTool();
    const loadMs = ctx.quick ? 700 : 2000;
    const sRounds = ctx.quick ? 5 : 9;
    const conc = 16;
    try {
      for (const size of ['1kb', '1mb'] as const) {
        const withNginx = nginx !== null && size === '1kb';
        const rounds = size === '1kb' ? sRounds : Math.max(3, sRounds - 2);
        ctx.progress(
          `static ${size}: ${rounds} interleaved rounds of ${loadMs} ms, ${conc} keep-alive connections, one load tool`,
        );
        const cpu = { ours: [] as number[], fastify: [] as number[], nginx: [] as number[] };
        const contenders: Record<string, () => Promise<number>> = {
          ours: () => rps(tool, oursSrv, `/${size}.bin`, conc, loadMs, cpu.ours),
          fastify: () => rps(tool, fastify, `/${size}.bin`, conc, loadMs, cpu.fastify),
        };
        if (withNginx) {
          contenders.nginx = () => rps(tool, nginx, `/${size}.bin`, conc, loadMs, cpu.nginx);
        }
        const r = await interleave(contenders, rounds);
        const serverCpuMicrosPerRequest: Record<string, number> = {
          ours: Number(median(cpu.ours).toFixed(1)),
          '@fastify/static': Number(median(cpu.fastify).toFixed(1)),
        };
        if (withNginx) serverCpuMicrosPerRequest.nginx = Number(median(cpu.nginx).toFixed(1));
        const sp = {
          rounds,
          durationMs: loadMs,
          connections: conc,
          loadTool:
            'one raw-socket HTTP/1.1 keep-alive client in its own process, shared by all servers',
          servers: 'each in its own process (nginx: 1 worker)',
          serverCpuMicrosPerRequest,
        };
        ctx.progress(
          `static ${size}: server CPU per request (median, us) ${JSON.stringify(serverCpuMicrosPerRequest)}`,
        );
        out.push(
          result({
            id: `static.${size}.rps`,
            metric: 'throughput',
            unit: 'req/s',
            ours: Math.round(r.ours!),
            peer: { name: '@fastify/static', value: Math.round(r.fastify!) },
            higherIsBetter: true,
            params: sp,
          }),
        );
        if (size === '1kb') {
          if (withNginx)
            out.push(
              result({
                id: 'static.1kb.rps.vs-nginx',
                metric: 'throughput',
                unit: 'req/s',
                ours: Math.round(r.ours!),
                peer: { name: 'nginx (Debian nginx-light, 1 worker)', value: Math.round(r.nginx!) },
                higherIsBetter: true,
                params: sp,
              }),
            );
          else
            ctx.progress(
              'static.1kb.rps.vs-nginx skipped: nginx is not installed (apt-get install nginx-light)',
            );
        }
      }
    } finally {
      await tool.close();
      await nginx?.stop();
      await oursSrv.stop();
      await fastify.stop();
    }

    // --- upload: app CPU per GB, valet key vs proxied ---------------------------------------
    const storeDir = join(dir, 'store');
    const storagePath = resolve('src/storage/index.ts');
    const storage = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `import { StorageServer, staticKeys } from ${JSON.stringify(storagePath)};
        const s = await StorageServer.start({ dir: ${JSON.stringify(storeDir)}, keys: staticKeys([${JSON.stringify(creds)}]), fsync: false });
        console.log('listening on ' + s.url);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const storageUrl = await new Promise<string>((res, rej) => {
      let buf = '';
      storage.stdout!.on('data', (d) => {
        buf += d;
        const m = /listening on (\S+)/.exec(buf);
        if (m) res(m[1]!);
      });
      storage.on('exit', (c) => rej(new Error(`storage server exited ${c}`)));
    });
    const sHost = new URL(storageUrl).host;
    const signPut = (k: string, size: number) =>
      presign({
        method: 'PUT',
        protocol: 'http:',
        host: sHost,
        path: s3ObjectPath('uploads', k),
        headers: { 'content-length': String(size) },
        credentials: creds,
        region: 'us-east-1',
        date: Date.now(),
        expiresIn: 900,
      }).url;
    // create the bucket
    await new Promise<void>((res, rej) => {
      const u = new URL(
        presign({
          method: 'PUT',
          protocol: 'http:',
          host: sHost,
          path: '/uploads',
          credentials: creds,
          region: 'us-east-1',
          date: Date.now(),
          expiresIn: 60,
        }).url,
      );
      const r = request(
        { method: 'PUT', host: u.hostname, port: u.port, path: u.pathname + u.search },
        (resp) => {
          resp.resume();
          resp.on('end', () =>
            resp.statusCode === 200 ? res() : rej(new Error(`create bucket ${resp.statusCode}`)),
          );
        },
      );
      r.on('error', rej);
      r.end();
    });
    // The application: proxies PUT /upload/<key> to storage with a presigned URL.
    const app = createServer((req, res) => {
      const k = decodeURIComponent((req.url ?? '/').slice('/upload/'.length));
      const size = Number(req.headers['content-length']);
      const u = new URL(signPut(k, size));
      const up = request(
        {
          method: 'PUT',
          host: u.hostname,
          port: u.port,
          path: u.pathname + u.search,
          headers: { 'content-length': size },
        },
        (sr) => {
          res.writeHead(sr.statusCode ?? 502);
          sr.pipe(res);
        },
      );
      pipeline(req, up).catch(() => res.destroy());
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
    const files = ctx.quick ? 4 : 16;
    const fileBytes = (ctx.quick ? 16 : 64) * 1024 * 1024;
    const totalBytes = files * fileBytes;
    let seq = 0;
    const cpuPerGb = async (mode: 'valet' | 'proxy') => {
      const before = process.cpuUsage();
      const urls = Array.from({ length: files }, () => {
        const k = `u/${mode}-${seq++}.bin`;
        return mode === 'valet'
          ? signPut(k, fileBytes)
          : `${appUrl}/upload/${encodeURIComponent(k)}`;
      });
      const r = JSON.parse(await runChild(UPLOADER, [JSON.stringify(urls), String(fileBytes)])) as {
        failed: number;
      };
      if (r.failed > 0) throw new Error(`${r.failed} uploads failed in ${mode} mode`);
      const d = process.cpuUsage(before);
      return (d.user + d.system) / 1e6 / (totalBytes / 1e9);
    };
    try {
      ctx.progress(
        `upload: ${files} x ${fileBytes / 1048576} MiB per mode, app CPU measured with process.cpuUsage`,
      );
      const u = await interleave(
        { valet: () => cpuPerGb('valet'), proxy: () => cpuPerGb('proxy') },
        ctx.quick ? 2 : 3,
        0,
      );
      out.push(
        result({
          id: 'upload.app-cpu-per-gb',
          metric: 'application CPU per GB uploaded',
          unit: 's/GB',
          ours: Number(u.valet.toFixed(4)),
          peer: { name: 'proxied through the application', value: Number(u.proxy.toFixed(4)) },
          higherIsBetter: false,
          params: {
            bytesPerRound: totalBytes,
            files,
            fileBytes,
            note: ctx.quick ? 'quick mode: 64 MiB per round, not 1 GB' : '1 GiB per round',
          },
        }),
      );
    } finally {
      await new Promise<void>((r) => {
        app.close(() => r());
        app.closeAllConnections();
      });
      const exited = new Promise((r) => storage.once('exit', r));
      storage.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    }
    return out;
  },
};

export default suite;
