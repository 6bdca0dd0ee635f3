/**
 * References between a site's files, found by parsers (parse5 for HTML, css-tree for CSS) and
 * rewritten to fingerprinted names. A reference is a URL in an HTML attribute that loads or
 * links a resource (`href`, `src`, `poster`, `data`), in a `<style>` element or `style`
 * attribute, or a CSS `url(...)` / `@import`. Relative (`css/app.css`, `../img/a.png`) and
 * root-relative (`/css/app.css`) references are resolved against the referring file; URLs with
 * a scheme, protocol-relative URLs and fragments alone are left alone.
 */
import { posix } from 'node:path';
import { generate, parse as parseCss, walk } from 'css-tree';
import { parse as parseHtml } from 'parse5';

/** One reference rewritten to a fingerprinted name. */
export interface Rewrite {
  /** The site path of the file that holds the reference. */
  file: string;
  from: string;
  to: string;
}

/** A reference to a file that is not part of the deployed folder. */
export interface MissingReference {
  file: string;
  ref: string;
}

export interface ReferenceContext {
  /** Original site path to fingerprinted site path. */
  fingerprints: Readonly<Record<string, string>>;
  /** Every site path of the deploy (original names). */
  paths: ReadonlySet<string>;
}

export interface RewriteResult {
  text: string;
  /** The site paths the file's references point at (whether rewritten or not). */
  targets: string[];
  rewrites: Rewrite[];
  missing: MissingReference[];
}

const URL_ATTRIBUTES = new Set(['href', 'src', 'poster', 'data']);
const BASE = 'http://site.invalid/';

/** A text edit: replace `[start, end)` with `text`. */
interface Edit {
  start: number;
  end: number;
  text: string;
}

function applyEdits(source: string, edits: Edit[]): string {
  let out = '';
  let at = 0;
  for (const e of [...edits].sort((a, b) => a.start - b.start)) {
    out += source.slice(at, e.start) + e.text;
    at = e.end;
  }
  return out + source.slice(at);
}

/** The site path `ref` points at from `file`, or null when it leaves the site. */
function target(file: string, ref: string): string | null {
  if (ref === '' || ref.startsWith('#') || ref.startsWith('//') || URL.canParse(ref)) return null;
  let u: URL;
  try {
    u = new URL(ref, new URL(file, BASE));
  } catch {
    return null;
  }
  if (u.origin !== new URL(BASE).origin) return null;
  let path: string;
  try {
    path = decodeURIComponent(u.pathname).slice(1);
  } catch {
    return null;
  }
  return path === '' || path.endsWith('/') ? `${path}index.html` : path;
}

/**
 * The reference with its last path segment swapped for the fingerprinted name; query and
 * fragment kept.
 */
function swapName(ref: string, fingerprinted: string): string {
  const ends = [ref.indexOf('?'), ref.indexOf('#')].filter((i) => i >= 0);
  const q = ends.length > 0 ? Math.min(...ends) : -1;
  const path = q < 0 ? ref : ref.slice(0, q);
  const rest = q < 0 ? '' : ref.slice(q);
  const slash = path.lastIndexOf('/');
  return `${path.slice(0, slash + 1)}${encodeURIComponent(posix.basename(fingerprinted))}${rest}`;
}

class Collector {
  readonly rewrites: Rewrite[] = [];
  readonly missing: MissingReference[] = [];
  readonly targets: string[] = [];
  constructor(
    readonly file: string,
    readonly ctx: ReferenceContext,
  ) {}

  /** The new reference, or undefined when it stays as it is. */
  visit(ref: string): string | undefined {
    const t = target(this.file, ref.trim());
    if (t === null) return undefined;
    this.targets.push(t);
    const fp = this.ctx.fingerprints[t];
    if (fp !== undefined) {
      const to = swapName(ref.trim(), fp);
      this.rewrites.push({ file: this.file, from: ref, to });
      return to;
    }
    if (!this.ctx.paths.has(t) && !this.ctx.paths.has(`${t}/index.html`)) {
      this.missing.push({ file: this.file, ref });
    }
    return undefined;
  }
}

function cssEdits(css: string, c: Collector, offset: number, context?: string): Edit[] {
  const edits: Edit[] = [];
  let ast: ReturnType<typeof parseCss>;
  try {
    ast = parseCss(css, { positions: true, ...(context ? { context } : {}) });
  } catch {
    return edits;
  }
  walk(ast, (node) => {
    if (!node.loc) return;
    if (node.type === 'Url') {
      const to = c.visit(node.value);
      if (to !== undefined) {
        edits.push({
          start: offset + node.loc.start.offset,
          end: offset + node.loc.end.offset,
          text: generate({ type: 'Url', value: to }),
        });
      }
    } else if (node.type === 'Atrule' && node.name.toLowerCase() === 'import' && node.prelude) {
      walk(node.prelude, (p) => {
        if (p.type !== 'String' || !p.loc) return;
        const to = c.visit(p.value);
        if (to !== undefined) {
          edits.push({
            start: offset + p.loc.start.offset,
            end: offset + p.loc.end.offset,
            text: generate({ type: 'String', value: to }),
          });
        }
      });
    }
  });
  return edits;
}

/** Rewrite the references of a CSS file. */
export function rewriteCss(file: string, css: string, ctx: ReferenceContext): RewriteResult {
  const c = new Collector(file, ctx);
  const text = applyEdits(css, cssEdits(css, c, 0));
  return { text, targets: c.targets, rewrites: c.rewrites, missing: c.missing };
}

interface Loc {
  startOffset: number;
  endOffset: number;
}

interface HtmlNode {
  nodeName: string;
  attrs?: { name: string; value: string }[];
  childNodes?: HtmlNode[];
  content?: HtmlNode;
  value?: string;
  sourceCodeLocation?: (Loc & { attrs?: Record<string, Loc> }) | null;
}

function escapeAttribute(v: string): string {
  return v.replaceAll('&', '&amp;').replaceAll('"', '&quot;');
}

/** Rewrite the references of an HTML file. */
export function rewriteHtml(file: string, html: string, ctx: ReferenceContext): RewriteResult {
  const c = new Collector(file, ctx);
  const edits: Edit[] = [];
  const doc = parseHtml(html, { sourceCodeLocationInfo: true }) as unknown as HtmlNode;
  const visit = (node: HtmlNode, inStyle: boolean) => {
    if (inStyle && node.nodeName === '#text' && node.sourceCodeLocation) {
      const loc = node.sourceCodeLocation;
      edits.push(...cssEdits(html.slice(loc.startOffset, loc.endOffset), c, loc.startOffset));
    }
    for (const a of node.attrs ?? []) {
      const loc = node.sourceCodeLocation?.attrs?.[a.name];
      if (!loc) continue;
      if (URL_ATTRIBUTES.has(a.name)) {
        const to = c.visit(a.value);
        if (to !== undefined) {
          edits.push({ ...span(loc), text: `${a.name}="${escapeAttribute(to)}"` });
        }
      } else if (a.name === 'style') {
        const r = cssEdits(a.value, c, 0, 'declarationList');
        if (r.length > 0) {
          edits.push({
            ...span(loc),
            text: `style="${escapeAttribute(applyEdits(a.value, r))}"`,
          });
        }
      }
    }
    const style = node.nodeName === 'style';
    for (const child of node.childNodes ?? []) visit(child, style);
    if (node.content) visit(node.content, false);
  };
  visit(doc, false);
  return {
    text: applyEdits(html, edits),
    targets: c.targets,
    rewrites: c.rewrites,
    missing: c.missing,
  };
}

function span(loc: Loc): { start: number; end: number } {
  return { start: loc.startOffset, end: loc.endOffset };
}
