import { afterAll, beforeAll, expect, it } from 'vitest';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { createTempDatabase, type TempDatabase } from '../../src/testing/index.js';
import { describeServer } from '../support/servers.js';
import { type Client, startClient } from './support.js';

const HEADER = 'x-cdp-consistency-token';

describeServer('catalog on replicas (CDP_REPLICA_URLS)', 'CDP_REPLICA_TEST_URLS', (urls) => {
  const [primaryUrl, ...standbys] = urls.split(',') as [string, ...string[]];
  let db: TempDatabase;
  let client: Client;
  let paused: PgSqlClient;

  beforeAll(async () => {
    db = await createTempDatabase(primaryUrl, { prefix: 'replpg_app' });
    const replicaUrls = standbys.map((u) => {
      const x = new URL(u);
      x.pathname = `/${db.name}`;
      return x.toString();
    });
    // The new database reaches the standbys by replication: wait until both accept connections
    // (the replica router's suite may hold the first standby's replay paused for a while).
    for (const url of replicaUrls) {
      for (let i = 0; ; i++) {
        try {
          await (await PgSqlClient.open({ url, max: 1 })).close();
          break;
        } catch (err) {
          if (i > 200) throw err;
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    }
    client = await startClient({
      CDP_DATABASE_URL: db.url,
      CDP_REPLICA_URLS: replicaUrls.join(','),
    });
    // The second standby: the replica router's suite pauses the first one.
    paused = await PgSqlClient.open({ url: replicaUrls[1]!, max: 1 });
  }, 150_000);

  afterAll(async () => {
    await paused?.query('SELECT pg_wal_replay_resume()').catch(() => {});
    await paused?.close();
    await client?.close();
    await db?.drop();
  });

  it('an instructor reads each change back at once while a standby is paused', async () => {
    const key = await client.key('instructor', 'Ada Park');
    const course = await client.course('Ada Park');
    await paused.query('SELECT pg_wal_replay_pause()');
    try {
      for (let i = 0; i < 30; i++) {
        const title = `Title ${i}`;
        const patch = await client.call('PATCH', `/api/catalog/courses/${course.id}`, {
          key,
          body: { title },
        });
        expect(patch.status).toBe(200);
        const token = patch.headers.get(HEADER);
        expect(token).toMatch(/^cdp1\.\d+\.\d+\.[0-9A-F]+\/[0-9A-F]+$/);
        const withToken = await client.call('GET', `/api/catalog/courses/${course.id}`, {
          headers: { [HEADER]: token! },
        });
        expect((withToken.body as { title: string }).title).toBe(title);
        const list = await client.call('GET', '/api/catalog/courses?topic=testing&limit=200', {
          headers: { [HEADER]: token! },
        });
        const listed = (list.body as { courses: { id: string; title: string }[] }).courses;
        expect(listed.find((c) => c.id === course.id)?.title).toBe(title);
        // Without the header too: the platform keeps each course's last write token.
        const plain = await client.call('GET', `/api/catalog/courses/${course.id}`);
        expect((plain.body as { title: string }).title).toBe(title);
      }
    } finally {
      await paused.query('SELECT pg_wal_replay_resume()');
    }
  });

  it('a malformed or foreign token is a 400 with its code', async () => {
    const course = await client.course('Lin Osei');
    const bad = await client.call('GET', `/api/catalog/courses/${course.id}`, {
      headers: { [HEADER]: 'not-a-token' },
    });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('REPLICATION_TOKEN_MALFORMED');
    const foreign = await client.call('GET', '/api/catalog/courses', {
      headers: { [HEADER]: 'cdp1.1234.1.0/16B3740' },
    });
    expect(foreign.status).toBe(400);
    expect(foreign.text).toContain('REPLICATION_TOKEN_FOREIGN');
  });

  it('the replication panel shows each standby and the reads they served', async () => {
    const panel = await client.call('GET', '/api/panels');
    const panels = (panel.body as { panels: { id: string; stats: { label: string }[] }[] }).panels;
    const replication = panels.find((p) => p.id === 'replication');
    expect(replication?.stats.filter((s) => s.label.startsWith('lag ')).length).toBe(2);
  });
});
