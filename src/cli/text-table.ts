/**
 * A plain-text table for the CLI: columns padded to their widest cell, two spaces apart,
 * trailing spaces trimmed. The first row is the header; `rule` puts a line of dashes under it.
 */
export function textTable(
  rows: readonly (readonly string[])[],
  options: { rule?: boolean } = {},
): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: readonly string[]) =>
    r
      .map((cell, c) => cell.padEnd(widths[c]!))
      .join('  ')
      .trimEnd();
  const out = rows.map(line);
  if (options.rule) out.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return out.join('\n');
}
