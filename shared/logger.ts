import type { LogFields, Logger, Severity } from './ports';

const RANK: Record<Severity, number> = { DEBUG: 100, INFO: 200, NOTICE: 300, WARNING: 400, ERROR: 500, CRITICAL: 600 };

/** Serializes errors (with their cause chain) so that a log line says what went wrong and why. */
function plain(value: unknown): unknown {
  if (value instanceof Error) {
    const out: Record<string, unknown> = { name: value.name, message: value.message };
    for (const [k, v] of Object.entries(value)) out[k] = plain(v);
    if (value.cause !== undefined) out.cause = plain(value.cause);
    return out;
  }
  return value;
}

/**
 * JSON-lines logger in the structured format Cloud Logging reads from stdout: `severity`,
 * `message`, `time`, plus the entry's fields (`batchId`, `jobName`, `messageId`, ...).
 */
export class JsonLogger implements Logger {
  constructor(
    private readonly write: (line: string) => void,
    private readonly minimum: Severity = 'INFO',
    private readonly fields: LogFields = {},
    private readonly now: () => Date = () => new Date(),
  ) {}

  log(severity: Severity, message: string, fields: LogFields = {}): void {
    if (RANK[severity] < RANK[this.minimum]) return;
    const entry: Record<string, unknown> = { severity, message, time: this.now().toISOString(), ...this.fields };
    for (const [k, v] of Object.entries(fields)) entry[k] = plain(v);
    this.write(JSON.stringify(entry));
  }
  debug(message: string, fields?: LogFields): void { this.log('DEBUG', message, fields); }
  info(message: string, fields?: LogFields): void { this.log('INFO', message, fields); }
  warn(message: string, fields?: LogFields): void { this.log('WARNING', message, fields); }
  error(message: string, fields?: LogFields): void { this.log('ERROR', message, fields); }
  child(fields: LogFields): Logger {
    return new JsonLogger(this.write, this.minimum, { ...this.fields, ...fields }, this.now);
  }
}

/** Logs to stdout, one line per entry (what Cloud Run functions forward to Cloud Logging). */
export function stdoutLogger(minimum: Severity = 'INFO'): Logger {
  return new JsonLogger((line) => process.stdout.write(`${line}\n`), minimum);
}
