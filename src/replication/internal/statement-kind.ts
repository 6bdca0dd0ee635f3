/**
 * Whether a statement may run on a read-only standby, judged by its first keyword after
 * whitespace and comments: SELECT, VALUES, TABLE, SHOW and WITH are candidates for a replica,
 * anything else goes to the primary. A candidate that writes after all (`WITH ... INSERT`, a
 * function that writes) fails on the standby with SQLSTATE 25006 and the router sends it to
 * the primary; the keyword only has to be right in the common case.
 */
export function mayReadOnReplica(text: string): boolean {
  let i = 0;
  const n = text.length;
  for (;;) {
    while (i < n && isSpace(text.charCodeAt(i))) i++;
    if (text.startsWith('--', i)) {
      const end = text.indexOf('\n', i);
      if (end < 0) return false;
      i = end + 1;
      continue;
    }
    if (text.startsWith('/*', i)) {
      const end = text.indexOf('*/', i + 2);
      if (end < 0) return false;
      i = end + 2;
      continue;
    }
    break;
  }
  let j = i;
  while (j < n && isLetter(text.charCodeAt(j))) j++;
  switch (text.slice(i, j).toLowerCase()) {
    case 'select':
    case 'values':
    case 'table':
    case 'show':
    case 'with':
      return true;
    default:
      return false;
  }
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13 || c === 12 || c === 40; // and '('
}

function isLetter(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

/** SQLSTATE 25006: a write on a read-only (standby) connection. */
export const READ_ONLY_SQL_TRANSACTION = '25006';
