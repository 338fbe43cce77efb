import { version } from './program';

/**
 * The one shape of every `--json` document (like dbt's run_results.json): what ran, when, how it
 * ended, then the command's own fields. Documented in the README's "JSON output".
 */
export interface JsonDocument {
  command: string;
  version: string;
  generatedAt: string;
  ok: boolean;
  exitCode: number;
  [field: string]: unknown;
}

export function jsonDocument(command: string, exitCode: number, fields: Record<string, unknown>): string {
  const document: JsonDocument = { command, version: version(), generatedAt: new Date().toISOString(), ok: exitCode === 0, exitCode, ...fields };
  return JSON.stringify(document, null, 2);
}
