import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeServer } from '../support/servers.js';
import { type Client, startClient } from './support.js';

type Result = {
  ok: boolean;
  summary: string;
  figures: { label: string; value: number | string }[];
  steps: string[];
};
type Panels = {
  panels: {
    id: string;
    title: string;
    stats: { label: string; value: unknown; hint?: string }[];
    charts?: unknown[];
  }[];
};

describe('quorum feature (embedded in-process nodes)', () => {
  let c: Client;
  let viewer: string;
  beforeAll(async () => {
    c = await startClient();
    viewer = await c.key('viewer', 'dashboard');
  });
  afterAll(async () => {
    await c?.close();
  });

  it('the panel says the nodes are in-process and shows N, R, W with a hint on every stat', async () => {
    const panel = ((await c.call('GET', '/api/panels')).body as Panels).panels.find(
      (p) => p.id === 'quorum',
    );
    expect(panel?.title).toMatch(/5 in-process nodes; set CDP_QUORUM_URLS/);
    const value = (label: string) => panel?.stats.find((s) => s.label === label)?.value;
    expect([value('N'), value('R'), value('W')]).toEqual([5, 3, 3]);
    expect(panel?.stats.every((s) => s.hint)).toBe(true);
    expect(panel?.charts?.length).toBeGreaterThan(0);
  });

  it('the demonstration stops a node, and the checker finds ABD linearizable and LWW not', async () => {
    const r = await c.call('POST', '/api/demos/quorum-node-down', { key: viewer });
    expect(r.status, r.text).toBe(200);
    const result = r.body as Result;
    expect(result.ok, result.summary).toBe(true);
    const figure = (label: string) => result.figures.find((f) => f.label === label)?.value;
    expect(figure('checker (ABD)')).toBe('linearizable');
    expect(figure('checker (LWW)')).toBe('not-linearizable');
    expect(Number(figure('hints stored'))).toBeGreaterThan(0);
    const panel = ((await c.call('GET', '/api/panels')).body as Panels).panels.find(
      (p) => p.id === 'quorum',
    );
    expect(panel?.stats.find((s) => s.label === 'last checker verdict')?.value).toMatch(
      /^not-linearizable \(last-write-wins/,
    );
    expect(Number(panel?.stats.find((s) => s.label === 'hints stored')?.value)).toBeGreaterThan(0);
  });
});

describeServer(
  'quorum feature on Redis nodes (CDP_QUORUM_URLS)',
  'CDP_QUORUM_TEST_URLS',
  (list) => {
    let c: Client;
    let viewer: string;
    beforeAll(async () => {
      c = await startClient({ CDP_QUORUM_URLS: list });
      viewer = await c.key('viewer', 'dashboard');
    });
    afterAll(async () => {
      await c?.close();
    });

    it('the panel names the Redis nodes, health lists them, and the demonstration holds', async () => {
      const panel = ((await c.call('GET', '/api/panels')).body as Panels).panels.find(
        (p) => p.id === 'quorum',
      );
      expect(panel?.title).toMatch(/5 Redis nodes/);
      const health = JSON.stringify((await c.call('GET', '/health')).body);
      expect(health).toMatch(/quorum node 127\.0\.0\.1:6391/);
      const r = await c.call('POST', '/api/demos/quorum-node-down', { key: viewer });
      expect(r.status, r.text).toBe(200);
      expect((r.body as Result).ok, (r.body as Result).summary).toBe(true);
    });
  },
);
