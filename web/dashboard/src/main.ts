import { LiveState } from './api.js';
import { el } from './dom.js';
import { type Cleanup, docsPage, overview, patternPage, sourcePage } from './pages.js';
import { patternPages } from './patterns.js';
import './style.css';

const main = document.getElementById('main')!;
const nav = document.getElementById('nav')!;
const conn = document.getElementById('conn')!;
const live = new LiveState();

const links: [string, string][] = [
  ['#/', 'Overview'],
  ...patternPages.map((p): [string, string] => [`#/${p.slug}`, p.title]),
  ['#/docs', 'Docs'],
];
nav.append(
  el(
    'ul',
    {},
    ...links.map(([href, text]) => el('li', {}, el('a', { href }, text))),
    el('li', {}, el('a', { href: '/api/docs/reference' }, 'API reference')),
  ),
);

let cleanup: Cleanup = () => {};

function route(): void {
  cleanup();
  const hash = location.hash || '#/';
  // #/docs/<page>#<anchor>: the second # names a heading of the page.
  const [path = '/', anchor] = hash.slice(1).split('#');
  for (const a of nav.querySelectorAll('a')) {
    const here =
      a.getAttribute('href') === `#${path}` ||
      (path.startsWith('/docs') && a.getAttribute('href') === '#/docs');
    if (here) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = 'cloud-data-patterns · dashboard';
  const page = patternPages.find((p) => path === `/${p.slug}`);
  if (page) {
    document.title = `${page.title} · cloud-data-patterns`;
    cleanup = patternPage(main, live, page);
  } else if (path === '/docs' || path.startsWith('/docs/')) {
    cleanup = docsPage(main, path.slice('/docs/'.length) || undefined, anchor);
  } else if (path.startsWith('/source/')) {
    cleanup = sourcePage(main, path.slice('/source/'.length));
  } else {
    cleanup = overview(main, live);
  }
  if (!anchor) window.scrollTo(0, 0);
}

window.addEventListener('hashchange', () => {
  route();
  main.focus({ preventScroll: true });
});
live
  .start((text, ok) => {
    conn.textContent = text;
    conn.classList.toggle('bad', !ok);
  })
  .then(route);
