/**
 * GoogleSQL, the language BigQuery runs, offline: ZetaSQL's local service (the binary inside the
 * devDependency @fivetrandevelopers/zetasql) analyses statements against a catalog and evaluates
 * queries on given table content with its reference engine.
 *
 * The service starts on first use, once per test run, on a free loopback port; the mocha root hook
 * of test/support/googlesql-hooks.ts stops it after the run. Tests that never call it never start it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { ZetaSQLClient } from '@fivetrandevelopers/zetasql';
import { toBigQueryParams } from '../../shared/gcp/bigquery-warehouse';
import type { QueryParams, Row, SchemaField } from '../../shared/ports';
import { atEndOfRun } from './googlesql-hooks';

/** Tables by their BigQuery name without backticks (`project.dataset.table`), each with its schema. */
export type Catalog = Record<string, SchemaField[]>;

/** A table's content: rows as plain values (NUMERIC, TIMESTAMP, DATE as strings). */
export type TableRows = Record<string, { schema: SchemaField[]; rows: Row[] }>;

export interface OutputColumn {
  name: string;
  type: string;
}

/** ZetaSQL type protos, as the service's JSON takes them. */
interface TypeProto {
  typeKind: string;
  arrayType?: { elementType: TypeProto };
}

/** BigQuery's column and parameter types as ZetaSQL type kinds. */
const TYPE_KINDS: Record<string, string> = {
  STRING: 'TYPE_STRING',
  BYTES: 'TYPE_BYTES',
  NUMERIC: 'TYPE_NUMERIC',
  BIGNUMERIC: 'TYPE_BIGNUMERIC',
  TIMESTAMP: 'TYPE_TIMESTAMP',
  DATETIME: 'TYPE_DATETIME',
  DATE: 'TYPE_DATE',
  TIME: 'TYPE_TIME',
  INT64: 'TYPE_INT64',
  INTEGER: 'TYPE_INT64',
  FLOAT64: 'TYPE_DOUBLE',
  FLOAT: 'TYPE_DOUBLE',
  BOOL: 'TYPE_BOOL',
  BOOLEAN: 'TYPE_BOOL',
  JSON: 'TYPE_JSON',
};

/** ZetaSQL's TypeKind numbers (zetasql/public/type.proto) back to BigQuery's names. */
const TYPE_NAMES: Record<number, string> = { 1: 'INT32', 2: 'INT64', 5: 'BOOL', 7: 'FLOAT64', 8: 'STRING', 9: 'BYTES', 10: 'DATE', 19: 'TIMESTAMP', 16: 'ARRAY', 17: 'STRUCT', 20: 'TIME', 21: 'DATETIME', 23: 'NUMERIC', 24: 'BIGNUMERIC', 25: 'JSON' };

function typeOf(bigqueryType: string | string[]): TypeProto {
  if (Array.isArray(bigqueryType)) {
    if (bigqueryType.length !== 1) throw new Error(`Unsupported parameter type ${JSON.stringify(bigqueryType)}`);
    return { typeKind: 'TYPE_ARRAY', arrayType: { elementType: typeOf(bigqueryType[0]) } };
  }
  const kind = TYPE_KINDS[bigqueryType.toUpperCase()];
  if (!kind) throw new Error(`No GoogleSQL type for the BigQuery type ${bigqueryType}`);
  return { typeKind: kind };
}

// ---------------------------------------------------------------------------------------------
// The service

interface Service {
  child: ChildProcess;
  client: ZetaSQLClient;
  /** The service's gRPC stub (evaluateQuery has no wrapper in the client). */
  api: { evaluateQuery: (request: unknown, callback: (error: unknown, response: never) => void) => unknown };
  languageOptions: unknown;
}

let service: Promise<Service> | undefined;
let running: ChildProcess | undefined;

const BINARY = join(require.resolve('@fivetrandevelopers/zetasql'), '..', 'zetasql', 'remote_server.so');
const START_TRIES = 3;
const CONNECT_POLLS = 4;

async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function startOnce(): Promise<Service> {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`The GoogleSQL tests need the ZetaSQL local service, shipped for Linux x86-64 only (this is ${process.platform}-${process.arch})`);
  }
  // Loaded here, not at import: a test run that never needs GoogleSQL never loads its client.
  const { LanguageOptions, ZetaSQLClient } = await import('@fivetrandevelopers/zetasql');
  const port = await freeLoopbackPort();
  const child = spawn(BINARY, ['127.0.0.1', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  running = child;
  let output = '';
  const collect = (data: Buffer) => (output = (output + String(data)).slice(-2_000));
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<never>((_, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => reject(new Error(`The ZetaSQL local service (${BINARY}) exited (${code ?? signal}) on port ${port}: ${output.trim()}`)));
  });
  exited.catch(() => undefined);
  ZetaSQLClient.init(port);
  const client = ZetaSQLClient.getInstance();
  // testConnection polls for about 7 s; a loaded machine can take longer to map the 110 MB binary.
  let up = false;
  for (let poll = 0; poll < CONNECT_POLLS && !up; poll++) up = await Promise.race([client.testConnection(), exited]);
  if (!up) {
    child.kill('SIGKILL');
    throw new Error(`The ZetaSQL local service did not answer on 127.0.0.1:${port}: ${output.trim()}`);
  }
  const languageOptions = (await new LanguageOptions().enableMaximumLanguageFeatures()).serialize();
  return { child, client, api: ZetaSQLClient.API as unknown as Service['api'], languageOptions };
}

async function start(): Promise<Service> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce();
    } catch (error) {
      running?.kill('SIGKILL');
      if (attempt >= START_TRIES) throw error; // another process may have taken the port in between
    }
  }
}

function googleSql(): Promise<Service> {
  if (!service) {
    service = start();
    atEndOfRun(stopGoogleSql);
  }
  return service;
}

/** Stops the service if this run started it. */
export async function stopGoogleSql(): Promise<void> {
  const child = running;
  service = undefined;
  running = undefined;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await gone;
}

process.once('exit', () => running?.kill('SIGKILL'));

// ---------------------------------------------------------------------------------------------
// Catalog, parameters, analysis

function simpleCatalog(catalog: Catalog, languageOptions: unknown): unknown {
  return {
    name: 'bigquery',
    table: Object.entries(catalog).map(([name, schema]) => ({ name, column: schema.map((f) => ({ name: f.name, type: typeOf(f.type) })) })),
    builtinFunctionOptions: { languageOptions },
  };
}

/** Each parameter declared with exactly the type the BigQuery adapter sends for it. */
function declaredParameters(params: QueryParams): { name: string; type: TypeProto }[] {
  const { types } = toBigQueryParams(params);
  return Object.entries(types).map(([name, type]) => ({ name, type: typeOf(type) }));
}

/** BigQuery's defaults: named parameters, UTC as the default time zone. */
function analyzerOptions(params: QueryParams, languageOptions: unknown): unknown {
  return {
    languageOptions,
    errorMessageMode: 'ERROR_MESSAGE_ONE_LINE',
    parameterMode: 'PARAMETER_NAMED',
    defaultTimezone: 'UTC',
    queryParameters: declaredParameters(params),
  };
}

/** "message [at 3:14]" -> the message with the statement's line and a caret under the position. */
function located(message: string, sql: string, what: string): Error {
  const at = /\[at (\d+):(\d+)\]/.exec(message);
  if (!at) return new Error(`${what}: ${message}\n${sql}`);
  const [line, column] = [Number(at[1]), Number(at[2])];
  const text = sql.split('\n')[line - 1] ?? '';
  return new Error(`${what}: ${message}\n  line ${line}: ${text}\n  ${' '.repeat(`line ${line}: `.length + column - 1)}^\n--- statement ---\n${sql}`);
}

interface ResolvedColumn {
  name: string;
  column?: { type?: { typeKind?: number } };
}

function outputColumnsOf(response: unknown): OutputColumn[] {
  const statement = (response as { resolvedStatement?: Record<string, { outputColumnList?: ResolvedColumn[] }> }).resolvedStatement ?? {};
  const node = Object.values(statement).find((value) => value && typeof value === 'object' && Array.isArray(value.outputColumnList));
  return (node?.outputColumnList ?? []).map((c) => ({ name: c.name, type: TYPE_NAMES[c.column?.type?.typeKind ?? -1] ?? `TYPE_KIND_${c.column?.type?.typeKind}` }));
}

/**
 * Analyses one BigQuery statement against the catalog, with each parameter declared with the type
 * the BigQuery adapter sends. Rejects with the statement and the position of the error; resolves
 * with the output columns of a query (none for DML and DDL).
 */
export async function analyze(sql: string, params: QueryParams, catalog: Catalog): Promise<OutputColumn[]> {
  const { client, languageOptions } = await googleSql();
  try {
    const response = await client.analyze({ simpleCatalog: simpleCatalog(catalog, languageOptions), sqlStatement: sql, options: analyzerOptions(params, languageOptions) } as never);
    return outputColumnsOf(response);
  } catch (error) {
    throw located((error as { details?: string }).details ?? String(error), sql, 'GoogleSQL analysis failed');
  }
}

// ---------------------------------------------------------------------------------------------
// Values: plain JSON values <-> ZetaSQL ValueProto

const NUMERIC_SCALE = 9;
const TIMESTAMP = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}(?::?\d{2})?)?$/;

/** A decimal string as ZetaSQL's NUMERIC bytes: the value times 10^9, two's complement, little-endian, shortest. */
export function numericBytes(text: string): Buffer {
  const match = /^(-?)(\d+)(?:\.(\d{0,9}))?$/.exec(text.trim());
  if (!match) throw new Error(`Not a NUMERIC value (at most 9 decimals): ${text}`);
  let scaled = BigInt(match[2] + (match[3] ?? '').padEnd(NUMERIC_SCALE, '0'));
  if (match[1]) scaled = -scaled;
  const bytes: number[] = [];
  for (;;) {
    const byte = Number(BigInt.asUintN(8, scaled));
    bytes.push(byte);
    scaled >>= 8n;
    if ((scaled === 0n && (byte & 0x80) === 0) || (scaled === -1n && (byte & 0x80) !== 0)) break;
  }
  return Buffer.from(bytes);
}

/** ZetaSQL's NUMERIC bytes as a decimal string without trailing fractional zeros. */
export function numericText(bytes: Uint8Array): string {
  let scaled = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) scaled = (scaled << 8n) | BigInt(bytes[i]);
  if (bytes.length > 0 && (bytes[bytes.length - 1] & 0x80) !== 0) scaled -= 1n << BigInt(8 * bytes.length);
  const negative = scaled < 0n;
  const digits = (negative ? -scaled : scaled).toString().padStart(NUMERIC_SCALE + 1, '0');
  const whole = digits.slice(0, -NUMERIC_SCALE);
  const fraction = digits.slice(-NUMERIC_SCALE).replace(/0+$/, '');
  return `${negative ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`;
}

function timestampProto(text: string): { seconds: string; nanos: number } {
  const match = TIMESTAMP.exec(text);
  if (!match) throw new Error(`Not a timestamp: ${text}`);
  let zone = match[4] ?? 'Z';
  if (/^[+-]\d{2}$/.test(zone)) zone += ':00';
  if (/^[+-]\d{4}$/.test(zone)) zone = `${zone.slice(0, 3)}:${zone.slice(3)}`;
  const millis = Date.parse(`${match[1]}T${match[2]}${zone}`);
  if (Number.isNaN(millis)) throw new Error(`Not a timestamp: ${text}`);
  return { seconds: String(Math.floor(millis / 1000)), nanos: Number((match[3] ?? '').padEnd(9, '0')) };
}

const DAY_MS = 86_400_000;

/** A plain value as a ValueProto of the BigQuery type (null: a NULL of that type). */
function valueProto(value: unknown, type: string): unknown {
  if (value === null || value === undefined) return {};
  switch (type.toUpperCase()) {
    case 'STRING':
      return { stringValue: String(value) };
    case 'NUMERIC':
      return { numericValue: numericBytes(String(value)) };
    case 'TIMESTAMP':
      return { timestampValue: timestampProto(String(value)) };
    case 'DATE':
      return { dateValue: Math.round(Date.parse(`${String(value)}T00:00:00Z`) / DAY_MS) };
    case 'INT64':
    case 'INTEGER':
      return { int64Value: String(value) };
    case 'BOOL':
    case 'BOOLEAN':
      return { boolValue: Boolean(value) };
    case 'FLOAT64':
    case 'FLOAT':
      return { doubleValue: Number(value) };
    default:
      throw new Error(`No ValueProto encoding for the BigQuery type ${type}`);
  }
}

function parameterValue(value: QueryParams[string]['value'], type: string | string[]): unknown {
  if (Array.isArray(type)) return { arrayValue: { element: (Array.isArray(value) ? value : []).map((v) => valueProto(v, type[0])) } };
  return valueProto(value, type);
}

/** A 64-bit integer as the service returns it (a Long, a string or a number). */
function int64Of(value: unknown): bigint {
  return BigInt(typeof value === 'object' && value !== null ? String(value) : (value as string | number));
}

/** A ValueProto from the service as a plain value: TIMESTAMP as ISO with microseconds, NUMERIC as a string, INT64 as a number, DATE as YYYY-MM-DD. */
function plainValue(cell: Record<string, unknown>): unknown {
  const kind = cell.value as string | undefined;
  if (!kind) return null;
  const value = cell[kind];
  switch (kind) {
    case 'stringValue':
    case 'boolValue':
    case 'doubleValue':
      return value;
    case 'int64Value':
    case 'int32Value':
      return Number(int64Of(value));
    case 'numericValue':
      return numericText(value as Uint8Array);
    case 'dateValue':
      return new Date((value as number) * DAY_MS).toISOString().slice(0, 10);
    case 'timestampValue': {
      const { seconds, nanos } = value as { seconds: unknown; nanos: number };
      const micros = int64Of(seconds) * 1_000_000n + BigInt(Math.floor(nanos / 1000));
      return isoMicros(micros);
    }
    case 'arrayValue':
      return ((value as { element?: Record<string, unknown>[] }).element ?? []).map(plainValue);
    default:
      throw new Error(`Unsupported GoogleSQL value kind in a result: ${kind}`);
  }
}

/** Epoch microseconds as `YYYY-MM-DDTHH:MM:SS.ffffffZ`. */
export function isoMicros(micros: bigint): string {
  const millis = micros / 1000n - (micros % 1000n < 0n ? 1n : 0n);
  const rest = micros - millis * 1000n;
  return new Date(Number(millis)).toISOString().replace(/Z$/, `${String(rest).padStart(3, '0')}Z`);
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/**
 * Runs a BigQuery query with ZetaSQL's reference engine on the given table content, with the
 * parameters typed as the BigQuery adapter sends them; returns its rows as plain values.
 */
export async function evaluate(sql: string, params: QueryParams, tables: TableRows): Promise<Row[]> {
  const { client, api, languageOptions } = await googleSql();
  const { types } = toBigQueryParams(params);
  const catalog: Catalog = Object.fromEntries(Object.entries(tables).map(([name, t]) => [name, t.schema]));
  const tableContent = Object.fromEntries(
    Object.entries(tables).map(([name, t]) => [name, { tableData: { row: t.rows.map((row) => ({ cell: t.schema.map((f) => valueProto(row[f.name], f.type)) })) } }]),
  );
  const request = {
    sql,
    simpleCatalog: simpleCatalog(catalog, languageOptions),
    options: analyzerOptions(params, languageOptions),
    tableContent,
    params: Object.entries(params).map(([name, p]) => ({ name, value: parameterValue(p.value, types[name]) })),
  };
  type Response = { content?: { tableData?: { row?: { cell?: Record<string, unknown>[] }[] } }; prepared?: { columns?: { name: string }[] } };
  let response: Response;
  try {
    response = await client.promisify(request, api.evaluateQuery.bind(api) as never);
  } catch (error) {
    throw located((error as { details?: string }).details ?? String(error), sql, 'GoogleSQL evaluation failed');
  }
  const names = (response.prepared?.columns ?? []).map((c) => c.name);
  return (response.content?.tableData?.row ?? []).map((row) => Object.fromEntries((row.cell ?? []).map((cell, i) => [names[i], plainValue(cell)])));
}
