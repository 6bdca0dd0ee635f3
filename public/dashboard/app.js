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

// Course videos: ask the platform for a valet key (a POST policy), send the file straight to the
// storage server with it, then play it back through a presigned GET.
async function uploadVideo(ev) {
  ev.preventDefault();
  const status = $('#media-status');
  const file = $('#media-file').files[0];
  const courseId = $('#media-course').value;
  const apiKey = $('#media-key').value.trim();
  if (!file) return;
  sessionStorage.setItem('cdp-api-key', apiKey);
  const auth = { authorization: `Bearer ${apiKey}` };
  const contentType = file.type.startsWith('video/') ? file.type : 'video/mp4';
  status.textContent = 'asking for an upload key…';
  const res = await fetch('/api/media/uploads', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...auth },
    body: JSON.stringify({ courseId, contentType, maxBytes: Math.max(file.size, 1) }),
  });
  const grant = await res.json();
  if (!res.ok) {
    status.textContent = `refused: ${grant.error?.message ?? res.status}`;
    return;
  }
  const key = `courses/${courseId}/${file.name.replace(/[^A-Za-z0-9._-]/g, '_')}`;
  const form = new FormData();
  // Each field once (the storage server refuses duplicates), the file last.
  const fields = { ...grant.fields, key, 'Content-Type': contentType };
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  form.append('file', file);
  status.textContent = `uploading ${file.size} bytes to the storage server…`;
  const up = await fetch(grant.url, { method: 'POST', body: form });
  if (!up.ok) {
    status.textContent = `upload refused by storage: ${up.status}`;
    return;
  }
  const play = await (
    await fetch(`/api/media/play?key=${encodeURIComponent(key)}`, { headers: auth })
  ).json();
  const video = $('#media-video');
  video.src = play.url;
  video.hidden = false;
  status.textContent = `uploaded ${file.size} bytes straight to storage (key ${grant.keyId})`;
}

$('#media-form').addEventListener('submit', (ev) => {
  uploadVideo(ev).catch((err) => {
    $('#media-status').textContent = `failed: ${err.message}`;
  });
});

// The courses an upload can go to, by title and instructor.
async function loadCourses() {
  const { courses } = await (await fetch('/api/catalog/courses?limit=200')).json();
  $('#media-course').replaceChildren(
    ...courses.map((c) => el('option', { value: c.id }, `${c.title} (${c.instructor})`)),
  );
}

$('#media-key').value = sessionStorage.getItem('cdp-api-key') ?? '';
loadModules();
loadCourses();
connect();
