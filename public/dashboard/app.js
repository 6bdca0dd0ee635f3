// The dashboard renders panels described as data by the server: a module adds a panel without
// touching this file.
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function fmt(v) {
  return typeof v === 'number' ? v.toLocaleString('en-US', { maximumFractionDigits: 2 }) : v;
}

function renderEngines(engines) {
  const body = $('#engines tbody');
  body.replaceChildren(
    ...engines.map((e) =>
      el(
        'tr',
        {},
        el('td', {}, e.role),
        el('td', {}, e.engine),
        el('td', { class: e.ok ? 'ok' : 'bad' }, e.ok ? 'up' : `down: ${e.detail ?? ''}`),
        el('td', {}, e.latencyMs === undefined ? '' : `${e.latencyMs} ms`),
      ),
    ),
  );
}

function renderPanels(panels) {
  $('#panels').replaceChildren(
    ...panels.map((p) => {
      const title = el('h3', {}, p.title);
      if (p.docs)
        title.append(el('a', { href: `/api/docs?page=${encodeURIComponent(p.docs)}` }, 'docs'));
      const node = el('div', { class: 'panel', id: `panel-${p.id}` }, title);
      for (const s of p.stats)
        node.append(
          el(
            'div',
            { class: 'stat' },
            el('span', {}, s.label),
            el('b', {}, `${fmt(s.value)}${s.unit ? ` ${s.unit}` : ''}`),
          ),
        );
      if (p.table) {
        const t = el('table', {}, el('tr', {}, ...p.table.columns.map((c) => el('th', {}, c))));
        for (const r of p.table.rows) t.append(el('tr', {}, ...r.map((c) => el('td', {}, fmt(c)))));
        node.append(t);
      }
      return node;
    }),
  );
}

async function loadModules() {
  const api = await (await fetch('/api')).json();
  $('#modules').replaceChildren(
    ...api.modules.map((m) => el('li', {}, el('b', {}, m.name), ` — ${m.description}`)),
  );
}

function connect() {
  const source = new EventSource('/api/stream');
  source.addEventListener('status', (ev) => {
    const data = JSON.parse(ev.data);
    $('#conn').textContent = `live · ${new Date(data.at).toLocaleTimeString()}`;
    renderEngines(data.engines);
    renderPanels(data.panels);
  });
  source.onerror = () => {
    $('#conn').textContent = 'disconnected, retrying…';
  };
}

loadModules();
connect();
