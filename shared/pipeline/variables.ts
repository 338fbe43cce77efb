/**
 * The jinja variables of the pipeline file (consolidation.yaml). Beam YAML's ReadFromBigQuery
 * takes no query parameters, so the batch's read bounds reach its query as SQL text; to keep
 * design invariant 6, each variable is of one of three strict shapes, built by code and checked
 * again by both launchers (Dataflow's and the local runner) before anything is rendered:
 *
 * - `*_table`: a quoted table name, `project.dataset.table` in backticks or "schema"."table";
 * - `output_table`: the write step's unquoted name, project:dataset.table or schema.table;
 * - `as_of`, `read_after`: a timestamp literal `TIMESTAMP 'YYYY-MM-DD HH:MM:SS.ffffff+00:00'`
 *   produced by timestampLiteral from an RFC 3339 timestamp (never the raw string).
 */

/** The instants the pipeline's reads are bounded by. */
export const TIMESTAMP_VARIABLES = ['as_of', 'read_after'] as const;
export const TABLE_VARIABLES = ['ids_table', 'ussd_table', 'transactions_table', 'services_table', 'agents_table'] as const;
export const OUTPUT_VARIABLE = 'output_table';

const RFC3339 = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/i;
const LITERAL = /^TIMESTAMP '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00:00'$/;
const NAME = '[A-Za-z_][A-Za-z0-9_]*';
const PROJECT = '[a-z][a-z0-9-]{4,28}[a-z0-9]';
const QUOTED_TABLE = new RegExp(`^(\`${PROJECT}\\.${NAME}\\.${NAME}\`|"${NAME}"\\."${NAME}")$`);
const PLAIN_TABLE = new RegExp(`^(${PROJECT}:${NAME}\\.${NAME}|${NAME}\\.${NAME})$`);

/**
 * `TIMESTAMP '2026-01-15 10:20:00.000000+00:00'` for an RFC 3339 timestamp, in UTC with
 * microseconds (digits beyond them are dropped). Both BigQuery and DuckDB read it as that
 * instant (DuckDB in a UTC session, as every connection of the local warehouse is).
 * Throws on anything that is not a real RFC 3339 timestamp.
 */
export function timestampLiteral(rfc3339: string): string {
  const match = RFC3339.exec(rfc3339);
  const [, y, mo, d, h, mi, s] = match ?? [];
  const realDay = match !== null && new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d))).getUTCDate() === Number(d);
  const seconds = match ? Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${s}${match[8].toUpperCase()}`) : NaN;
  if (!match || !realDay || Number(h) > 23 || Number(mi) > 59 || Number(s) > 59 || Number.isNaN(seconds)) {
    throw new Error(`${JSON.stringify(rfc3339).slice(0, 80)} is not an RFC 3339 timestamp such as 2026-01-15T10:20:00Z`);
  }
  const utc = new Date(seconds).toISOString().slice(0, 19).replace('T', ' ');
  const micros = (match[7] ?? '').padEnd(6, '0').slice(0, 6);
  return `TIMESTAMP '${utc}.${micros}+00:00'`;
}

/**
 * Checks every variable against its shape; throws naming each bad or unknown one. Launchers call
 * it before launching, so a value that did not come from timestampLiteral or validated
 * configuration never reaches the pipeline's SQL.
 */
export function checkPipelineVariables(variables: Record<string, string>): void {
  const problems: string[] = [];
  const expected = [...TIMESTAMP_VARIABLES, ...TABLE_VARIABLES, OUTPUT_VARIABLE] as string[];
  for (const name of expected) if (!Object.hasOwn(variables, name)) problems.push(`${name} is missing`);
  for (const [name, value] of Object.entries(variables)) {
    const shape = (TIMESTAMP_VARIABLES as readonly string[]).includes(name)
      ? LITERAL
      : (TABLE_VARIABLES as readonly string[]).includes(name)
        ? QUOTED_TABLE
        : name === OUTPUT_VARIABLE
          ? PLAIN_TABLE
          : undefined;
    if (!shape) problems.push(`${name} is not a variable of the pipeline file`);
    else if (typeof value !== 'string' || !shape.test(value)) problems.push(`${name} (${JSON.stringify(value).slice(0, 80)}) does not have the shape ${shape.source}`);
  }
  if (problems.length > 0) throw new Error(`Refusing to render the pipeline file with these jinja variables: ${problems.join('; ')}`);
}
