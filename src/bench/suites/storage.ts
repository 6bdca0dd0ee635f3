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
import {
  presign,
  presignObject,
  s3ObjectPath,
  staticKeys,
  verifyRequest,
} from '../../storage/index.js';
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

/**
 * The load tool, one child process for the whole suite, shared by every server: a minimal
 * HTTP/1.1 keep-alive client on raw sockets (no http.Agent, no parser objects), so it spends
 * little CPU per request and the server, not the tool, is what gets measured. Connections
 * are opened once per target and reused across rounds. Each IPC message
 * `{ id, host, port, path, conc, ms }` runs `conc` connections in closed loop for `ms` and
 * answers `{ id, requests, seconds, errors }`. Every response must be a 200 with a
 * Content-Length, and every body byte is read.
 */
const LOADER = `
import net from 'node:net';
const pools = new Map();
function conn(host, port) {
  const c = { sock: net.connect({ host, port }), hdr: null, need: -1, status: 0, cb: null, dead: false };
  c.sock.setNoDelay(true);
  c.sock.on('data', (d) => {
    if (c.need < 0) {
      c.hdr = c.hdr ? Buffer.concat([c.hdr, d]) : d;
      const i = c.hdr.indexOf('\\r\\n\\r\\n');
      if (i < 0) return;
      const head = c.hdr.toString('latin1', 0, i);
      c.status = Number(head.slice(9, 12));
      const m = /\\r\\ncontent-length: *(\\d+)/i.exec(head);
      if (!m) { c.dead = true; c.sock.destroy(); return done(c, 0); }
      c.need = Number(m[1]) - (c.hdr.length - i - 4);
      c.hdr = null;
    } else c.need -= d.length;
    if (c.need === 0) { c.need = -1; done(c, c.status); }
    else if (c.need < -1) { c.dead = true; c.sock.destroy(); done(c, 0); }
  });
  c.sock.on('error', () => { c.dead = true; });
  c.sock.on('close', () => { c.dead = true; if (c.cb) done(c, 0); });
  return c;
}
function done(c, status) { const cb = c.cb; c.cb = null; if (cb) cb(status); }
process.on('message', (m) => {
  const key = m.host + ':' + m.port;
  let pool = pools.get(key);
  if (!pool) pools.set(key, (pool = []));
  while (pool.length < m.conc) pool.push(conn(m.host, m.port));
  for (let i = 0; i < pool.length; i++) if (pool[i].dead) pool[i] = conn(m.host, m.port);
  const req = Buffer.from('GET ' + m.path + ' HTTP/1.1\\r\\nHost: ' + key + '\\r\\nAccept: */*\\r\\n\\r\\n', 'latin1');
  let n = 0, errors = 0, stop = false, running = m.conc;
  const t0 = performance.now();
  const finish = () => {
    const seconds = (performance.now() - t0) / 1000;
    process.send({ id: m.id, requests: n, seconds, errors });
  };
  const loop = (c) => {
    const next = (status) => {
      if (status === 200) n++; else errors++;
      if (stop || c.dead) { if (--running === 0) finish(); return; }
      c.cb = next; c.sock.write(req);
    };
    c.cb = next; c.sock.write(req);
  };
  setTimeout(() => { stop = true; }, m.ms);
  for (let i = 0; i < m.conc; i++) loop(pool[i]);
});
process.on('disconnect', () => { for (const p of pools.values()) for (const c of p) c.sock.destroy(); });
`;

/** The shared load tool (see LOADER). */
class LoadTool {
  #p: ChildProcess;
  #seq = 0;
  #waiting = new Map<number, (r: LoadReport) => void>();

  constructor() {
    this.#p = spawn(process.execPath, ['--input-type=module', '-e', LOADER], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.#p.on('message', (m: LoadReport & { id: number }) => {
      this.#waiting.get(m.id)?.(m);
      this.#waiting.delete(m.id);
    });
  }

  run(url: string, conc: number, ms: number): Promise<LoadReport> {
    const u = new URL(url);
    const id = ++this.#seq;
    return new Promise((res) => {
      this.#waiting.set(id, res);
      this.#p.send({ id, host: u.hostname, port: Number(u.port), path: u.pathname, conc, ms });
    });
  }

  close(): Promise<void> {
    const exited = new Promise<void>((r) => this.#p.once('exit', () => r()));
    this.#p.disconnect();
    this.#p.kill('SIGTERM');
    return exited;
  }
}

interface LoadReport {
  requests: number;
  seconds: number;
  errors: number;
}

/** A server under test in its own process, and a way to read the CPU time it has used (µs). */
interface ServerUnderTest {
  url: string;
  cpuMicros(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Start a Node server child: `code` must listen on 127.0.0.1:0 and print
 * `listening on <url>`; it answers the IPC message 'cpu' with its process.cpuUsage().
 */
function startNodeServer(code: string, useTsx: boolean): Promise<ServerUnderTest> {
  const cpuReply = `process.on('message', (m) => { if (m === 'cpu') { const u = process.cpuUsage(); process.send({ cpu: u.user + u.system }); } });`;
  const p = spawn(
    process.execPath,
    [...(useTsx ? ['--import', 'tsx'] : []), '--input-type=module', '-e', `${cpuReply}\n${code}`],
    { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] },
  );
  return new Promise((res, rej) => {
    let buf = '';
    p.stdout!.on('data', (d) => {
      buf += d;
      const m = /listening on (\S+)/.exec(buf);
      if (!m) return;
      p.stdout!.removeAllListeners('data');
      p.stdout!.resume();
      res({
        url: m[1]!,
        cpuMicros: () =>
          new Promise((r) => {
            p.once('message', (x: { cpu: number }) => r(x.cpu));
            p.send('cpu');
          }),
        stop: () => {
          const exited = new Promise<void>((r) => p.once('exit', () => r()));
          p.kill('SIGTERM');
          return exited;
        },
      });
    });
    p.on('exit', (c) => rej(new Error(`server child exited ${c}`)));
  });
}

/** CPU time (µs) used so far by a process and its children (nginx: master and workers). */
async function procTreeCpuMicros(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const ticks = async (p: number) => {
    const st = await readFile(`/proc/${p}/stat`, 'utf8').catch(() => '');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    return Number(f[11] ?? 0) + Number(f[12] ?? 0); // utime, stime (fields 14 and 15)
  };
  const kids = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => ''))
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
  let t = await ticks(pid);
  for (const k of kids) t += await ticks(k);
  return (t * 1e6) / CLK_TCK;
}
const CLK_TCK = 100; // Linux USER_HZ

/**
 * Requests per second of `server` under the load tool; pushes the server's CPU microseconds
 * per request to `cpu`: a figure that, unlike req/s, barely moves when other work shares
 * the machine.
 */
async function rps(
  tool: LoadTool,
  server: Pick<ServerUnderTest, 'url' | 'cpuMicros'>,
  path: string,
  conc: number,
  ms: number,
  cpu: number[],
): Promise<number> {
  const before = await server.cpuMicros();
  const r = await tool.run(`${server.url}${path}`, conc, ms);
  const used = (await server.cpuMicros()) - before;
  if (r.errors > 0) throw new Error(`${r.errors} failed requests against ${server.url}${path}`);
  cpu.push(used / r.requests);
  return r.requests / r.seconds;
}

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

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[s.length >> 1]! : Number.NaN;
}

async function startNginx(root: string, dir: string): Promise<ServerUnderTest | null> {
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
  const stop = async () => {
    if (p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await exited;
  };
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 50));
    try {
      const ok = await fetch(`http://127.0.0.1:${port}/1kb.bin`);
      await ok.arrayBuffer();
      if (ok.status === 200) {
        return {
          url: `http://127.0.0.1:${port}`,
          cpuMicros: () => procTreeCpuMicros(p.pid!),
          stop,
        };
      }
    } catch {
      // not up yet
    }
  }
  await stop();
  return null;
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
