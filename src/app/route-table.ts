/** A route pattern and its methods, as a suggestion for a path that matched nothing. */
export interface RouteSuggestion {
  url: string;
  methods: string[];
}

/** Edit distance (insert, delete, substitute: 1 each) between two strings. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++)
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * How far a path is from a route pattern, segment by segment: a `:param` segment matches any
 * non-empty segment, `*` matches the rest, a missing or extra segment costs 1, a segment with
 * a typo (at most half its letters differ) costs that fraction, and another word costs 2.
 */
function distance(pattern: string[], path: string[]): number {
  const wild = pattern.indexOf('*');
  const fixed = wild < 0 ? pattern : pattern.slice(0, wild);
  const rest = wild < 0 ? path : path.slice(0, fixed.length);
  const cost = (s: string, p: string) => {
    if (s.startsWith(':')) return p === '' ? 1 : 0;
    if (s === p) return 0;
    const typo = editDistance(s, p) / Math.max(s.length, p.length);
    return typo <= 0.5 ? typo : 2;
  };
  let previous = Array.from({ length: rest.length + 1 }, (_, j) => j);
  for (let i = 1; i <= fixed.length; i++) {
    const current = [i];
    for (let j = 1; j <= rest.length; j++)
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + cost(fixed[i - 1]!, rest[j - 1]!),
      );
    previous = current;
  }
  return previous[rest.length]!;
}

/** Known route patterns and their methods: 405 with Allow for a wrong method, and the nearest routes for a 404. */
export class RouteTable {
  readonly #routes: { url: string; segments: string[]; methods: Set<string>; suggest: boolean }[] =
    [];

  add(url: string, methods: string[], suggest = true): void {
    const same = this.#routes.find((r) => r.url === url);
    if (same) {
      for (const m of methods) same.methods.add(m);
      same.suggest ||= suggest;
    } else this.#routes.push({ url, segments: url.split('/'), methods: new Set(methods), suggest });
  }

  /** Methods of every route whose pattern matches this path (`:param` one segment, `*` the rest). */
  allowed(path: string): string[] {
    const parts = path.split('/');
    const out = new Set<string>();
    for (const r of this.#routes) {
      let ok = true;
      for (let i = 0; i < r.segments.length; i++) {
        const s = r.segments[i]!;
        if (s === '*') break;
        const p = parts[i];
        if (p === undefined || (s.startsWith(':') ? p === '' : s !== p)) {
          ok = false;
          break;
        }
        if (i === r.segments.length - 1 && parts.length !== r.segments.length) ok = false;
      }
      if (ok) for (const m of r.methods) out.add(m);
    }
    return [...out].sort();
  }

  /**
   * The routes nearest to a path that matched none, nearest first: by segment distance, then
   * by whether they take `method`, then by the length of the prefix they share with the path.
   * HEAD is left out where GET is listed.
   */
  nearest(path: string, method: string, limit = 3): RouteSuggestion[] {
    let trimmed = path;
    while (trimmed.length > 1 && trimmed.endsWith('/')) trimmed = trimmed.slice(0, -1);
    const parts = trimmed.split('/');
    const shared = (url: string) => {
      let n = 0;
      while (n < url.length && n < path.length && url[n] === path[n]) n++;
      return n;
    };
    return this.#routes
      .filter((r) => r.suggest)
      .map((r) => ({
        r,
        d: distance(r.segments, parts),
        takes: r.methods.has(method) ? 0 : 1,
        prefix: shared(r.url),
      }))
      .sort((a, b) => a.d - b.d || a.takes - b.takes || b.prefix - a.prefix)
      .slice(0, limit)
      .map(({ r }) => ({
        url: r.url,
        methods: [...r.methods].filter((m) => m !== 'HEAD' || !r.methods.has('GET')).sort(),
      }));
  }
}
