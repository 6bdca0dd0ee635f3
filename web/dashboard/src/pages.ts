import {
  apiKey,
  type DemoInfo,
  type DemoResult,
  getJson,
  type LiveState,
  type Module,
  type Panel,
  post,
} from './api.js';
import { LiveChart } from './charts.js';
import { renderDoc } from './docs.js';
import { el } from './dom.js';
import { figure } from './format.js';
import { type PatternPage, patternPages } from './patterns.js';

/** What a page leaves behind to undo when the visitor goes elsewhere. */
export type Cleanup = () => void;

function statList(panel: Panel): HTMLElement {
  return el(
    'dl',
    { class: 'stats' },
    ...panel.stats.map((s) =>
      el(
        'div',
        { class: 'stat', title: s.hint, tabindex: s.hint ? '0' : undefined },
        el('dt', {}, s.label),
        el('dd', {}, figure(s.value, s.unit)),
        s.hint ? el('span', { class: 'hint', role: 'tooltip' }, s.hint) : null,
      ),
    ),
  );
}

function table(panel: Panel): HTMLElement | null {
  if (!panel.table || panel.table.rows.length === 0) return null;
  return el(
    'div',
    { class: 'table-wrap' },
    el(
      'table',
      {},
      el(
        'thead',
        {},
        el('tr', {}, ...panel.table.columns.map((c) => el('th', { scope: 'col' }, c))),
      ),
      el(
        'tbody',
        {},
        ...panel.table.rows.map((r) =>
          el('tr', {}, ...r.map((c) => el('td', {}, typeof c === 'number' ? figure(c) : c))),
        ),
      ),
    ),
  );
}

function engines(live: LiveState): HTMLElement {
  const rows = (live.latest?.engines ?? []).map((e) =>
    el(
      'tr',
      {},
      el('td', {}, e.role),
      el('td', {}, e.engine),
      el('td', { class: e.ok ? 'ok' : 'bad' }, e.ok ? 'up' : `down: ${e.detail ?? ''}`),
      el('td', {}, e.latencyMs === undefined ? '' : figure(e.latencyMs, 'ms')),
    ),
  );
  return el(
    'div',
    { class: 'table-wrap' },
    el(
      'table',
      { id: 'engines' },
      el(
        'thead',
        {},
        el(
          'tr',
          {},
          ...['role', 'engine', 'status', 'latency'].map((c) => el('th', { scope: 'col' }, c)),
        ),
      ),
      el('tbody', {}, ...rows),
    ),
  );
}

/** Overview: what this is, the engines, one card per pattern page with its headline figures. */
export function overview(main: HTMLElement, live: LiveState): Cleanup {
  const cards = el('div', { class: 'grid', id: 'cards' });
  const engineBox = el('section', {
    class: 'panel',
    id: 'panel-engines',
    'aria-labelledby': 'h-engines',
  });
  const modules = el('ul', { id: 'modules' });
  main.replaceChildren(
    el('h1', {}, 'Data patterns at work'),
    el(
      'p',
      { class: 'lead' },
      'This is a course marketplace built on cloud data-management patterns, running on real engines. Each page below shows one family of patterns live: what it does, in plain words, its figures moving as the platform works, and demonstrations you can run and watch.',
    ),
    el(
      'p',
      {},
      'Start with ',
      el('a', { href: '#/cache' }, 'Caching'),
      ": run the cache stampede and watch 1,000 concurrent reads cause one database load. The demonstrations need the dashboard's viewer key, from the demo-keys.json file named when the platform started. Hover or focus a figure to see what it means.",
    ),
    engineBox,
    el('h2', {}, 'Patterns'),
    cards,
    el('h2', {}, 'Modules'),
    modules,
  );
  const render = () => {
    engineBox.replaceChildren(el('h2', { id: 'h-engines' }, 'Engines'), engines(live));
    cards.replaceChildren(
      ...patternPages.map((p) => {
        const panel = live.panel(p.panel);
        return el(
          'section',
          { class: 'panel card', id: `panel-${p.panel}`, 'aria-labelledby': `card-${p.slug}` },
          el('h3', { id: `card-${p.slug}` }, el('a', { href: `#/${p.slug}` }, p.title)),
          el('p', { class: 'muted' }, p.patterns),
          panel
            ? statList({ ...panel, stats: panel.stats.slice(0, 3) })
            : el('p', {}, 'waiting for data…'),
        );
      }),
      ...(live.latest?.panels ?? [])
        .filter((p) => !patternPages.some((pp) => pp.panel === p.id))
        .map((p) =>
          el(
            'section',
            { class: 'panel card', id: `panel-${p.id}`, 'aria-label': p.title },
            el('h3', {}, p.title),
            statList(p),
          ),
        ),
    );
  };
  render();
  getJson<{ modules: Module[] }>('/api')
    .then(({ modules: list }) =>
      modules.replaceChildren(
        ...list.map((m) => el('li', {}, el('b', {}, m.name), ` — ${m.description}`)),
      ),
    )
    .catch(() => {});
  return live.subscribe(render);
}

function demoCard(d: DemoInfo): HTMLElement {
  const out = el('div', { class: 'demo-result', id: `demo-result-${d.id}`, 'aria-live': 'polite' });
  const button = el('button', { type: 'button', id: `demo-run-${d.id}` }, 'Run');
  button.addEventListener('click', async () => {
    button.disabled = true;
    out.replaceChildren(el('p', { class: 'muted' }, 'running…'));
    try {
      const r = await post<DemoResult>(`/api/demos/${encodeURIComponent(d.id)}`);
      out.replaceChildren(
        el('p', { class: r.ok ? 'verdict ok' : 'verdict bad' }, `${r.ok ? '✓' : '✗'} ${r.summary}`),
        el(
          'dl',
          { class: 'stats' },
          ...r.figures.map((f) =>
            el(
              'div',
              { class: 'stat' },
              el('dt', {}, f.label),
              el('dd', {}, figure(f.value, f.unit)),
            ),
          ),
          el(
            'div',
            { class: 'stat' },
            el('dt', {}, 'took'),
            el('dd', {}, figure(r.durationMs, 'ms')),
          ),
        ),
        el('ol', { class: 'steps' }, ...r.steps.map((s) => el('li', {}, s))),
      );
    } catch (err) {
      out.replaceChildren(el('p', { class: 'verdict bad' }, `refused: ${(err as Error).message}`));
    } finally {
      button.disabled = false;
    }
  });
  return el(
    'section',
    { class: 'panel demo', id: `demo-${d.id}`, 'aria-labelledby': `demo-h-${d.id}` },
    el('h3', { id: `demo-h-${d.id}` }, d.title),
    el('p', {}, d.description),
    button,
    out,
  );
}

function keyField(): HTMLElement {
  const input = el('input', {
    id: 'api-key',
    type: 'password',
    autocomplete: 'off',
    placeholder: 'cdpk_…',
    'aria-describedby': 'api-key-help',
  });
  input.value = apiKey.get();
  input.addEventListener('input', () => apiKey.set(input.value));
  return el(
    'div',
    { class: 'key' },
    el('label', { for: 'api-key' }, 'API key'),
    input,
    el(
      'p',
      { id: 'api-key-help', class: 'muted' },
      "Demonstrations run with the dashboard's viewer key (role viewer), uploads with an instructor's. The demo keys are in the demo-keys.json file the platform names when it starts. The key stays in this tab only.",
    ),
  );
}

/** A pattern page: explanation, live figures and charts with history, demonstrations. */
export function patternPage(main: HTMLElement, live: LiveState, page: PatternPage): Cleanup {
  const stats = el('section', {
    class: 'panel',
    id: `panel-${page.panel}`,
    'aria-labelledby': 'h-now',
  });
  const chartsBox = el('div', { class: 'charts' });
  const demos = el('div', { class: 'grid demos', id: 'demos' });
  const extra = page.slug === 'media' ? mediaUpload() : null;
  main.replaceChildren(
    el('h1', {}, page.title),
    el('p', { class: 'muted' }, page.patterns),
    el('p', { class: 'lead' }, page.explanation),
    el(
      'p',
      {},
      'Read more: ',
      ...page.docs.flatMap((d, i) => [
        i > 0 ? ', ' : '',
        el('a', { href: `#/docs/${d.page}` }, d.title),
      ]),
    ),
    stats,
    el('h2', {}, 'Over time'),
    chartsBox,
    el('h2', {}, 'Try it'),
    keyField(),
    demos,
    extra ?? '',
  );
  let charts: LiveChart[] = [];
  const buildCharts = (panel: Panel) => {
    chartsBox.replaceChildren();
    charts = (panel.charts ?? []).map((c, i) => {
      const box = el('div', { class: 'chart-box', id: `chart-${page.panel}-${i}` });
      chartsBox.append(
        el(
          'figure',
          { class: 'panel chart' },
          el(
            'figcaption',
            {},
            el('b', {}, c.title),
            c.unit ? ` (${c.unit})` : '',
            c.hint ? el('span', { class: 'muted' }, ` — ${c.hint}`) : null,
          ),
          box,
        ),
      );
      return new LiveChart(box, page.panel, c.stats, c.unit);
    });
  };
  const render = () => {
    const panel = live.panel(page.panel);
    if (!panel) {
      stats.replaceChildren(el('p', {}, 'waiting for data…'));
      return;
    }
    stats.replaceChildren(
      el('h2', { id: 'h-now' }, `${panel.title}: now`),
      statList(panel),
      table(panel) ?? '',
    );
    if (charts.length === 0 && (panel.charts?.length ?? 0) > 0) buildCharts(panel);
    for (const c of charts) c.update(live.samples);
  };
  render();
  getJson<{ demos: DemoInfo[] }>('/api/demos')
    .then(({ demos: list }) => {
      const mine = list.filter((d) => d.feature === page.panel);
      demos.replaceChildren(
        ...(mine.length
          ? mine.map(demoCard)
          : [el('p', {}, 'No demonstration for this page yet.')]),
      );
    })
    .catch(() => {});
  const stop = live.subscribe(render);
  return () => {
    stop();
    for (const c of charts) c.destroy();
  };
}

/** Upload a course video straight to the storage server with a valet key, and play it back. */
function mediaUpload(): HTMLElement {
  const status = el('p', { id: 'media-status', class: 'muted', 'aria-live': 'polite' });
  const course = el('select', { id: 'media-course', required: true });
  const file = el('input', { id: 'media-file', type: 'file', accept: 'video/*', required: true });
  const video = el(
    'video',
    { id: 'media-video', controls: true, hidden: true },
    el('track', { kind: 'captions', label: 'captions (none uploaded)' }),
  );
  const form = el(
    'form',
    { id: 'media-form', class: 'panel' },
    el('h3', {}, 'Upload a course video'),
    el(
      'p',
      { class: 'muted' },
      "The file goes from this page straight to the storage server with a short-lived, size-capped POST policy; the application only signs. Use the API key of the course's instructor.",
    ),
    el('label', { for: 'media-course' }, 'course'),
    course,
    el('label', { for: 'media-file' }, 'video file'),
    file,
    el('button', { type: 'submit' }, 'Upload'),
    status,
    video,
  );
  getJson<{ courses: { id: string; title: string; instructor: string }[] }>(
    '/api/catalog/courses?limit=200',
  )
    .then(({ courses }) =>
      course.replaceChildren(
        ...courses.map((c) => el('option', { value: c.id }, `${c.title} (${c.instructor})`)),
      ),
    )
    .catch(() => {});
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = file.files?.[0];
    if (!f) return;
    const contentType = f.type.startsWith('video/') ? f.type : 'video/mp4';
    status.textContent = 'asking for an upload key…';
    (async () => {
      const grant = await post<{ keyId: string; url: string; fields: Record<string, string> }>(
        '/api/media/uploads',
        { courseId: course.value, contentType, maxBytes: Math.max(f.size, 1) },
      );
      const key = `courses/${course.value}/${f.name.replace(/[^A-Za-z0-9._-]/g, '_')}`;
      const form = new FormData();
      // Each field once (the storage server refuses duplicates), the file last.
      for (const [k, v] of Object.entries({ ...grant.fields, key, 'Content-Type': contentType }))
        form.append(k, v);
      form.append('file', f);
      status.textContent = `uploading ${figure(f.size, 'B')} to the storage server…`;
      const up = await fetch(grant.url, { method: 'POST', body: form });
      if (!up.ok) throw new Error(`the storage server refused the upload: HTTP ${up.status}`);
      const res = await fetch(`/api/media/play?key=${encodeURIComponent(key)}`, {
        headers: { authorization: `Bearer ${apiKey.get()}` },
      });
      const play = (await res.json()) as { url: string };
      video.src = play.url;
      video.hidden = false;
      status.textContent = `uploaded ${f.size} bytes straight to storage (key ${grant.keyId})`;
    })().catch((err: Error) => {
      status.textContent = `refused: ${err.message}`;
    });
  });
  return form;
}

/** A documentation page rendered as HTML, or the list of pages. */
export function docsPage(
  main: HTMLElement,
  page: string | undefined,
  anchor: string | undefined,
): Cleanup {
  if (!page) {
    main.replaceChildren(el('h1', {}, 'Documentation'), el('p', {}, 'loading…'));
    getJson<{ pages: string[] }>('/api/docs/pages').then(({ pages }) => {
      main.replaceChildren(
        el('h1', {}, 'Documentation'),
        el(
          'ul',
          { class: 'doc-list' },
          ...pages.map((p) => el('li', {}, el('a', { href: `#/docs/${p}` }, p))),
        ),
      );
    });
    return () => {};
  }
  main.replaceChildren(el('p', {}, `loading ${page}…`));
  fetch(`/api/docs?page=${encodeURIComponent(page)}`)
    .then(async (res) => {
      if (!res.ok) {
        main.replaceChildren(
          el('h1', {}, 'Not found'),
          el('p', {}, `There is no documentation page ${page}.`),
          el('a', { href: '#/docs' }, 'All pages'),
        );
        return;
      }
      main.replaceChildren(
        el('p', { class: 'crumbs' }, el('a', { href: '#/docs' }, 'Documentation'), ` / ${page}`),
        renderDoc(page, await res.text()),
      );
      document.title = `${page} · cloud-data-patterns`;
      if (anchor) document.getElementById(anchor)?.scrollIntoView();
    })
    .catch(() => {});
  return () => {};
}

/** A source file of the package, as the docs link to it. */
export function sourcePage(main: HTMLElement, path: string): Cleanup {
  main.replaceChildren(el('p', {}, `loading ${path}…`));
  fetch(`/api/source?path=${encodeURIComponent(path)}`)
    .then(async (res) => {
      main.replaceChildren(
        el('h1', {}, path),
        res.ok
          ? el('pre', { class: 'source' }, el('code', {}, await res.text()))
          : el('p', {}, `There is no source file ${path} in this package.`),
      );
    })
    .catch(() => {});
  return () => {};
}
