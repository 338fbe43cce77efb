/**
 * A structural check of SQL text: every scan of a source table is bounded on both sides on the
 * column the table is laid out by, with values BigQuery can prune on (a query parameter or a
 * TIMESTAMP literal, never a column of another table), ANDed with the rest of its WHERE clause.
 *
 * For each occurrence of a source table, the check reads the WHERE clause of the SELECT that
 * scans it (the same parenthesis depth, nested subqueries blanked out) and looks for
 * `[alias.]column > value` (or >=) and `[alias.]column < value` (or <=).
 */

export interface LayoutRule {
  /** The table as it appears in the SQL, quoted. */
  table: string;
  column: string;
  /** `column IS NULL` also bounds the scan (BigQuery's __NULL__ partition). */
  nullPartition?: boolean;
}

export interface ScanFinding {
  table: string;
  alias: string;
  where: string;
  problem?: string;
}

const VALUE = String.raw`(?:@[A-Za-z_][A-Za-z0-9_]*|CAST\(\$[A-Za-z_][A-Za-z0-9_]* AS TIMESTAMPTZ\)|TIMESTAMP '[0-9: .+-]+')`;
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The SQL with the contents of every parenthesis deeper than `depth` (relative to `start`) replaced by spaces, and the index where the enclosing one closes. */
function flatten(sql: string, start: number): { text: string; end: number } {
  let depth = 0;
  let out = '';
  let quote: string | undefined;
  for (let i = start; i < sql.length; i++) {
    const c = sql[i];
    if (quote) {
      if (c === quote) quote = undefined;
      out += depth === 0 ? c : ' ';
      continue;
    }
    if (c === "'" || c === '`') quote = c;
    if (c === '(') depth++;
    if (c === ')') {
      if (depth === 0) return { text: out, end: i };
      depth--;
      out += depth === 0 ? c : ' ';
      continue;
    }
    out += depth === 0 ? c : ' ';
  }
  return { text: out, end: sql.length };
}

/** Index of the '(' that opens the scope containing `index` (-1: the top level). */
function scopeStart(sql: string, index: number): number {
  let depth = 0;
  for (let i = index - 1; i >= 0; i--) {
    if (sql[i] === ')') depth++;
    if (sql[i] === '(') {
      if (depth === 0) return i;
      depth--;
    }
  }
  return -1;
}

/** Every scan of each rule's table in `sql`, with what is wrong with its bounds, if anything. */
export function sourceScans(sql: string, rules: LayoutRule[]): ScanFinding[] {
  const findings: ScanFinding[] = [];
  for (const rule of rules) {
    const occurrence = new RegExp(String.raw`\b(FROM|JOIN)\s+${escape(rule.table)}(?:\s+AS\s+([A-Za-z_][A-Za-z0-9_]*))?`, 'g');
    for (const match of sql.matchAll(occurrence)) {
      const alias = match[2] ?? '';
      const scope = scopeStart(sql, match.index);
      const { text } = flatten(sql, scope + 1);
      // flatten keeps one character per character of the SQL, so offsets carry over.
      const after = text.slice(match.index - (scope + 1) + match[0].length);
      const whereAt = after.search(/\bWHERE\b/);
      const cut = (s: string) => s.split(/\b(?:UNION ALL|UNION DISTINCT|QUALIFY|GROUP BY|ORDER BY|WINDOW)\b/)[0];
      // A FROM or JOIN of another table at this level before the WHERE is fine; a new SELECT is not.
      const where = whereAt < 0 || /\bSELECT\b/.test(after.slice(0, whereAt)) ? '' : cut(after.slice(whereAt + 5));
      const column = `${alias ? `${alias}\\.` : '(?<![.\\w])'}${rule.column}`;
      const lower = new RegExp(`${column}\\s*>=?\\s*${VALUE}`).test(where);
      const upper = new RegExp(`${column}\\s*<=?\\s*${VALUE}`).test(where);
      const isNull = rule.nullPartition === true && new RegExp(`${column}\\s+IS\\s+NULL`).test(where);
      let problem: string | undefined;
      if (!where) problem = 'no WHERE clause';
      else if (/\bOR\b/.test(where)) problem = 'its WHERE clause has an OR at the level of the bounds';
      else if (!isNull && !lower) problem = `no lower bound on ${rule.column} with a parameter or literal`;
      else if (!isNull && !upper) problem = `no upper bound on ${rule.column} with a parameter or literal`;
      findings.push({ table: rule.table, alias, where: where.replace(/\s+/g, ' ').trim(), ...(problem ? { problem } : {}) });
    }
  }
  return findings;
}
