/**
 * The storage benchmark's load machinery: a keep-alive load tool in a child process, the servers
 * under test (Node children, nginx) with the CPU time they use, and an upload client.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

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
export class LoadTool {
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

export interface LoadReport {
  requests: number;
  seconds: number;
  errors: number;
}

/** A server under test in its own process, and a way to read the CPU time it has used (µs). */
export interface ServerUnderTest {
  url: string;
  cpuMicros(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Start a Node server child: `code` must listen on 127.0.0.1:0 and print
 * `listening on <url>`; it answers the IPC message 'cpu' with its process.cpuUsage().
 */
export function startNodeServer(code: string, useTsx: boolean): Promise<ServerUnderTest> {
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
export async function rps(
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
export const UPLOADER = `
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

export function runChild(code: string, args: string[]): Promise<string> {
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

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[s.length >> 1]! : Number.NaN;
}

export async function startNginx(root: string, dir: string): Promise<ServerUnderTest | null> {
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
