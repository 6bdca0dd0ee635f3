// What the platform sends: the same shapes as src/app/feature.ts and src/app/panel-history.ts.
export interface Stat {
  label: string;
  value: number | string;
  unit?: string;
  hint?: string;
}
export interface Panel {
  id: string;
  title: string;
  stats: Stat[];
  charts?: { title: string; stats: string[]; unit?: string; hint?: string }[];
  table?: { columns: string[]; rows: (string | number)[][] };
  docs?: string;
}
export interface EngineStatus {
  role: string;
  engine: string;
  ok: boolean;
  detail?: string;
  latencyMs?: number;
}
export interface Snapshot {
  at: string;
  engines: EngineStatus[];
  panels: Panel[];
}
export interface HistorySample {
  t: number;
  values: Record<string, Record<string, number>>;
}
export interface DemoInfo {
  id: string;
  title: string;
  description: string;
  feature: string;
}
export interface DemoResult {
  id: string;
  ok: boolean;
  summary: string;
  figures: { label: string; value: number | string; unit?: string }[];
  steps: string[];
  durationMs: number;
}
export interface Module {
  name: string;
  description: string;
  docs: string[];
}

export async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

const KEY = 'cdp-api-key';
export const apiKey = {
  get: (): string => sessionStorage.getItem(KEY) ?? '',
  set: (v: string) => sessionStorage.setItem(KEY, v.trim()),
};

/** POST with the visitor's API key; the platform's refusal message when it refuses. */
export async function post<T>(url: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { authorization: `Bearer ${apiKey.get()}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url, {
    method: 'POST',
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = (await res.json().catch(() => ({}))) as T & { error?: { message?: string } };
  if (!res.ok) throw new Error(data.error?.message ?? `HTTP ${res.status}`);
  return data;
}

/**
 * The live state: the latest snapshot and the history of every numeric figure (from
 * GET /api/history when the page opens, then one sample per stream event), at most 10 minutes.
 */
export class LiveState {
  latest: Snapshot | undefined;
  readonly samples: HistorySample[] = [];
  readonly #listeners = new Set<() => void>();
  #source: EventSource | undefined;

  async start(onStatus: (text: string, ok: boolean) => void): Promise<void> {
    try {
      const { samples } = await getJson<{ samples: HistorySample[] }>('/api/history');
      this.samples.push(...samples);
    } catch {
      // History is a nicety: the charts start empty without it.
    }
    const source = new EventSource('/api/stream');
    this.#source = source;
    source.addEventListener('status', (ev) => {
      const data = JSON.parse((ev as MessageEvent<string>).data) as Snapshot;
      this.latest = data;
      const t = Date.parse(data.at);
      const last = this.samples.at(-1);
      if (!last || last.t < t) {
        const values: HistorySample['values'] = {};
        for (const p of data.panels) {
          const v: Record<string, number> = {};
          for (const s of p.stats) if (typeof s.value === 'number') v[s.label] = s.value;
          values[p.id] = v;
        }
        this.samples.push({ t, values });
        if (this.samples.length > 600) this.samples.shift();
      }
      onStatus(`live · ${new Date(t).toLocaleTimeString('en-GB')}`, true);
      for (const fn of this.#listeners) fn();
    });
    source.onerror = () => onStatus('disconnected, retrying…', false);
  }

  subscribe(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  panel(id: string): Panel | undefined {
    return this.latest?.panels.find((p) => p.id === id);
  }

  close(): void {
    this.#source?.close();
  }
}
