import MarkdownIt from 'markdown-it';

const md = new MarkdownIt({ html: false, linkify: true, typographer: false });

/** A heading's anchor id, GitHub style: lower case, spaces to dashes, punctuation dropped. */
export function slug(text: string): string {
  return text
    .toLowerCase()
    .trim()
    .replace(/[^\p{L}\p{N}\s-]/gu, '')
    .replace(/\s+/g, '-');
}

/** `a/b/../c.md` resolved against the folder of `from` (paths from the package root). */
export function resolvePath(from: string, target: string): string {
  const parts = target.startsWith('/') ? [] : from.split('/').slice(0, -1);
  for (const p of target.replace(/^\//, '').split('/')) {
    if (p === '..') parts.pop();
    else if (p !== '.' && p !== '') parts.push(p);
  }
  return parts.join('/');
}

/**
 * Where a link in doc page `page` goes inside the site: another doc page to its rendered page,
 * a heading of this page to its anchor, a source file under src/ to the source view; other
 * repository files (tests, benchmarks) are not in the package and lose their link.
 */
export function siteHref(page: string, href: string): string | undefined {
  if (/^[a-z]+:/i.test(href)) return href;
  const [path = '', anchor] = href.split('#');
  if (path === '') return `#/docs/${page}${anchor ? `#${anchor}` : ''}`;
  const target = resolvePath(page, path);
  if (target.endsWith('.md')) return `#/docs/${target}${anchor ? `#${anchor}` : ''}`;
  if (target.startsWith('src/')) return `#/source/${target}`;
  return undefined;
}

/** Render a doc page to HTML with its links rewritten (see siteHref) and heading ids. */
export function renderDoc(page: string, markdown: string): HTMLElement {
  const tokens = md.parse(markdown, {});
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.type === 'heading_open') t.attrSet('id', slug(tokens[i + 1]?.content ?? ''));
    for (const child of t.children ?? []) {
      if (child.type !== 'link_open') continue;
      const href = child.attrGet('href') ?? '';
      const to = siteHref(page, href);
      if (to === undefined) {
        child.attrSet('href', '');
        child.attrSet('data-nolink', href);
      } else {
        child.attrSet('href', to);
        if (/^https?:/.test(to)) {
          child.attrSet('target', '_blank');
          child.attrSet('rel', 'noopener');
        }
      }
    }
  }
  const article = document.createElement('article');
  article.className = 'doc';
  article.innerHTML = md.renderer.render(tokens, md.options, {});
  // A link to a file outside the package becomes plain text naming it.
  for (const a of article.querySelectorAll<HTMLAnchorElement>('a[data-nolink]')) {
    const span = document.createElement('span');
    span.className = 'nolink';
    span.title = `${a.dataset.nolink} is in the source repository, not in this package`;
    span.append(...a.childNodes);
    a.replaceWith(span);
  }
  // Code spans that name a source file link to its source view.
  for (const code of article.querySelectorAll('code')) {
    if (code.closest('pre, a')) continue;
    const text = code.textContent ?? '';
    if (/^src\/[\w./-]+\.ts$/.test(text) && !text.includes('..')) {
      const a = document.createElement('a');
      a.href = `#/source/${text}`;
      code.replaceWith(a);
      a.append(code);
    }
  }
  return article;
}
