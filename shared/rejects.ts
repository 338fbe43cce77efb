import type { QueryParam } from './ports';

/**
 * What makes a source row impossible to consolidate, and the fixed vocabulary of reasons the
 * quarantine records. The SQL statements (shared/sql/statements.ts), the pipeline's parameters
 * table and the tests' oracle all apply these same rules.
 */

export const REJECT_REASONS = [
  'MISSING_OPERATION_ID',
  'OPERATION_ID_TOO_LONG',
  'MISSING_SOURCE_TIMESTAMP',
  'MISSING_CREATED_AT',
  'TIMESTAMP_OUT_OF_RANGE',
  'MISSING_TRANSACTION_ID',
  'TRANSACTION_WITHOUT_UPDATED_AT',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/** Per reason, rows newly quarantined (reasons with no row are left out). */
export type RejectCounts = Partial<Record<RejectReason, number>>;

/** The longest operation ID consolidated (and the longest a replay accepts); a longer one is quarantined. */
export const MAX_ID_LENGTH = 128;

/** The earliest sane timestamp. */
export const VALID_FROM = '1970-01-01T00:00:00.000Z';

/** The ends of the TIMESTAMP range both engines hold: the quarantine's scans of out-of-range timestamps are bounded by them. */
export const TIMESTAMP_MIN = '0001-01-01T00:00:00.000Z';
export const TIMESTAMP_MAX = '9999-12-31T23:59:59.999Z';

/** How far past the window's end a timestamp may lie (clock skew) before it counts as out of range. */
export const FUTURE_SKEW_MS = 24 * 3600 * 1000;

/** The latest sane timestamp for a window ending at `windowTo`. */
export function validTo(windowTo: string | Date): string {
  return new Date(new Date(windowTo).getTime() + FUTURE_SKEW_MS).toISOString();
}

/**
 * A blank ID: empty, or only whitespace (ASCII, Unicode separators, zero-width space, BOM).
 * RE2 syntax, for BigQuery's REGEXP_CONTAINS and DuckDB's regexp_matches; passed as a value.
 */
export const BLANK_PATTERN = '^[\\t\\n\\x{0B}\\f\\r \\p{Z}\\x{200B}\\x{FEFF}]*$';

/**
 * The same class as code points, for the pipeline's query (consolidation.yaml), which has no
 * query parameters and whose string literals the two engines escape differently: a blank ID is
 * one that TRIM of these characters leaves empty.
 */
export const BLANK_CODE_POINTS = [9, 10, 11, 12, 13, 32, 160, 5760, 8192, 8193, 8194, 8195, 8196, 8197, 8198, 8199, 8200, 8201, 8202, 8203, 8232, 8233, 8239, 8287, 12288, 65279];

/** The same class for JavaScript (replay bodies, the tests' oracle). */
export const BLANK = /^[\t\n\v\f\r \p{Z}\u200B\uFEFF]*$/u;

/** The parameters the SQL of these rules takes (statements, the audit's from-scratch read), for a window ending at `windowTo`. */
export function rejectRuleParams(windowTo: string): Record<'valid_from' | 'valid_to' | 'blank_pattern' | 'max_id_length', QueryParam> {
  return {
    valid_from: { type: 'TIMESTAMP', value: VALID_FROM },
    valid_to: { type: 'TIMESTAMP', value: validTo(windowTo) },
    blank_pattern: { type: 'STRING', value: BLANK_PATTERN },
    max_id_length: { type: 'INT64', value: MAX_ID_LENGTH },
  };
}

/** A string's length as both engines count it: in code points. */
export const codePoints = (s: string): number => [...s].length;

export function formatRejectCounts(counts: RejectCounts | Record<string, number> | undefined): string {
  const entries = Object.entries(counts ?? {}).filter(([, n]) => (n ?? 0) > 0);
  return entries.length === 0 ? 'none' : entries.sort(([a], [b]) => a.localeCompare(b)).map(([reason, n]) => `${reason} ${n}`).join(' · ');
}
