/**
 * Benchmark `storage`: presign and verify throughput vs the AWS SDK, static file req/s vs
 * @fastify/static (and nginx when installed) under one keep-alive load generator running in a
 * child process, and the application's CPU per GB uploaded: direct to storage with a valet key
 * vs proxied through the application.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
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
import { presign, presignObject, s3ObjectPath } from '../../storage/sigv4.js';
import { verifyRequest } from '../../storage/sigv4-verify.js';
import { FolderSource, serveStaticSite } from '../../storage/static-site.js';
import { type BenchSuite, interleave, opsPerSecond, result } from '../harness.js';

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

/** Keep-alive HTTP load loop, run in a child process: prints {requests, seconds, errors}. */
const LOADER = `
import http from 'node:http';
const [url, conc, ms] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const u = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: conc });
let n = 0, errors = 0, stop = false;
const one = () => new Promise((res) => {
  const r = http.request({ host: u.hostname, port: u.port, path: u.pathname, agent }, (resp) => {
    if (resp.statusCode !== 200) errors++;
    resp.on('data', () => {}); resp.on('end', () => { n++; res(); });
  });
  r.on('error', () => { errors++; res(); });
  r.end();
});
const worker = async () => { while (!stop) await one(); };
const t0 = performance.now();
setTimeout(() => { stop = true; }, ms);
await Promise.all(Array.from({ length: conc }, worker));
const seconds = (performance.now() - t0) / 1000;
agent.destroy();
process.stdout.write(JSON.stringify({ requests: n, seconds, errors }));
`;

/** Upload client, run in a child process: PUTs `size` bytes to each URL (one at a time). */
const UPLOADER = `
import http from 'node:http';
const urls = JSON.parse(process.argv[1]);
const size = Number(process.argv[2]);
const chunk = Buffer.alloc(1024 * 1024, 7);
let failed = 0;
for (const url of urls) {
  const u = new URL(url);
  await new Promise((res) => {
    const r = http.request({ method: 'PUT', host: u.hostname, port: u.port, path: u.pathname + u.search, headers: { 'content-length': size } }, (resp) => {
      if (resp.statusCode !== 200) failed++;
      resp.resume(); resp.on('end', res);
    });
    r.on('error', () => { failed++; res(); });
    let left = size;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!r.write(n === chunk.length ? chunk : chunk.subarray(0, n))) { r.once('drain', pump); return; }
      }
      r.end();
    };
    pump();
  });
}
process.stdout.write(JSON.stringify({ failed }));
`;

function runChild(code: string, args: string[]): Promise<string> {
  return new Promise((resolveP, reject) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', code, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.on('exit', (c) => (c === 0 ? resolveP(out) : reject(new Error(`child exited ${c}`))));
  });
}

/**
 * Requests per second of the server at `url` under the load child. When the server runs in
 * this process, `cpu` collects its CPU microseconds per request: a figure that, unlike req/s,
 * barely moves when other work shares the machine.
 */
async function rps(url: string, conc: number, ms: number, cpu?: number[]): Promise<number> {
  const before = process.cpuUsage();
  const r = JSON.parse(await runChild(LOADER, [url, String(conc), String(ms)])) as {
    requests: number;
    seconds: number;
    errors: number;
  };
  const d = process.cpuUsage(before);
  if (r.errors > 0) throw new Error(`${r.errors} failed requests against ${url}`);
  cpu?.push((d.user + d.system) / r.requests);
  return r.requests / r.seconds;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[s.length >> 1]! : Number.NaN;
}

async function startNginx(
  root: string,
  dir: string,
): Promise<{ url: string; stop(): Promise<void> } | null> {
  const bin = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((b) => existsSync(b));
  if (!bin) return null;
  const port = 20000 + Math.floor(Math.random() * 20000);
  const conf = join(dir, 'nginx.conf');
  await mkdir(join(dir, 'nginx-tmp'), { recursive: true });
  await writeFile(
    conf,
    `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/nginx-error.log;
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  client_body_temp_path ${dir}/nginx-tmp; proxy_temp_path ${dir}/nginx-tmp; fastcgi_temp_path ${dir}/nginx-tmp;
  uwsgi_temp_path ${dir}/nginx-tmp; scgi_temp_path ${dir}/nginx-tmp;
  types { text/html html; application/octet-stream bin; }
  server { listen 127.0.0.1:${port}; root ${root}; etag on; } }`,
  );
  const p: ChildProcess = spawn(bin, ['-c', conf, '-p', dir], { stdio: 'ignore' });
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 50));
    try {
      const ok = await fetch(`http://127.0.0.1:${port}/1kb.bin`);
      await ok.arrayBuffer();
      if (ok.status === 200) break;
    } catch {
      // not up yet
    }
  }
  return {
    url: `http://127.0.0.1:${port}`,
    stop: async () => {
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await exited;
    },
  };
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
    const url = new URL(ours());
    const req = {
      method: 'GET',
      url: `${url.pathname}${url.search}`,
      headers: { host: ENDPOINT_HOST },
    };
    const lookup = (id: string) =>
      id === creds.accessKeyId ? { secretAccessKey: creds.secretAccessKey } : undefined;
    const v = await interleave(
      {
        ours: () =>
          opsPerSecond(
            () => verifyRequest(req, { region: 'us-east-1', now: date + 1000, lookup }),
            dur,
          ),
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
        params: { rounds, durationMs: dur, form: 'presigned GET' },
      }),
    );

    // --- static ----------------------------------------------------------------------------
    const dir = await mkdtemp(join(tmpdir(), 'cdp-bench-static-'));
    await chmod(dir, 0o755); // nginx workers run as an unprivileged user
    const root = join(dir, 'site');
    await mkdir(root);
    await writeFile(join(root, '1kb.bin'), randomBytes(1024));
    await writeFile(join(root, '1mb.bin'), randomBytes(1024 * 1024));
    const site = await serveStaticSite({ source: new FolderSource({ root }), out: () => {} });
    const { default: Fastify } = await import('fastify');
    const { default: fastifyStatic } = await import('@fastify/static');
    const fst = Fastify({ logger: false });
    await fst.register(fastifyStatic, { root });
    await fst.listen({ port: 0, host: '127.0.0.1' });
    const fstUrl = `http://127.0.0.1:${(fst.server.address() as AddressInfo).port}`;
    const nginx = await startNginx(root, dir).catch(() => null);
    const loadMs = ctx.quick ? 1500 : 4000;
    const sRounds = ctx.quick ? 2 : 5;
    const conc = 16;
    try {
      for (const size of ['1kb', '1mb'] as const) {
        ctx.progress(
          `static ${size}: ${sRounds} interleaved rounds of ${loadMs} ms, ${conc} keep-alive connections`,
        );
        const cpuOurs: number[] = [];
        const cpuPeer: number[] = [];
        const contenders: Record<string, () => Promise<number>> = {
          ours: () => rps(`${site.url}/${size}.bin`, conc, loadMs, cpuOurs),
          fastify: () => rps(`${fstUrl}/${size}.bin`, conc, loadMs, cpuPeer),
        };
        if (nginx && size === '1kb')
          contenders.nginx = () => rps(`${nginx.url}/${size}.bin`, conc, loadMs);
        const r = await interleave(contenders, sRounds);
        const sp = {
          rounds: sRounds,
          durationMs: loadMs,
          connections: conc,
          loadTool: 'node:http keep-alive loop in a child process',
          serverCpuMicrosPerRequest: {
            ours: Math.round(median(cpuOurs)),
            '@fastify/static': Math.round(median(cpuPeer)),
          },
        };
        ctx.progress(
          `static ${size}: server CPU per request (median) ours ${sp.serverCpuMicrosPerRequest.ours} us, @fastify/static ${sp.serverCpuMicrosPerRequest['@fastify/static']} us`,
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
          if (nginx)
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
      await nginx?.stop();
      await site.close();
      await fst.close();
    }

    // --- upload: app CPU per GB, valet key vs proxied ---------------------------------------
    const storeDir = join(dir, 'store');
    const storagePath = resolve('src/storage/s3-server.ts');
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
