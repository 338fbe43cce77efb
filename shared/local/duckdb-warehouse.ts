import {
  BIGINT,
  BOOLEAN,
  DuckDBArrayValue,
  DuckDBConnection,
  DuckDBDateValue,
  DuckDBDecimalValue,
  DuckDBInstance,
  DuckDBListValue,
  DuckDBStructValue,
  DuckDBTimestampMillisecondsValue,
  DuckDBTimestampNanosecondsValue,
  DuckDBTimestampSecondsValue,
  DuckDBTimestampTZValue,
  DuckDBTimestampValue,
  LIST,
  ResultReturnType,
  StatementType,
  VARCHAR,
  listValue,
  type DuckDBMaterializedResult,
  type DuckDBResult,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';
import { ChainError, errorMessage } from '../errors';
import type { DmlStats, Logger, QueryOptions, QueryParams, QueryResult, Row, SchemaField, Statement, TableLayout, TableRef, Warehouse } from '../ports';
import { duckdbCreateTable, duckdbType } from '../schema';
import { defineBigQueryFunctions } from './pipeline-runner';

/**
 * The warehouse of the local stack: one DuckDB database (a file, or ':memory:') standing in for
 * BigQuery. The four functions and the local runner share this one instance inside one process
 * (a DuckDB file can be opened by one process only); every operation takes its own connection
 * from a small pool, so concurrent calls run concurrently, and every connection runs in UTC.
 *
 * Values come back as plain JSON values: TIMESTAMP/TIMESTAMPTZ as ISO strings with milliseconds,
 * or microseconds when they have them, as the BigQuery adapter gives them ('2026-01-15T10:20:00.000Z',
 * '2026-01-15T10:20:00.123456Z'), DATE as 'YYYY-MM-DD', DECIMAL
 * (BigQuery NUMERIC) as its shortest exact decimal string ('1500', '1500.5', '-0.000000001'),
 * every integer type as a number, lists as arrays, structs as objects, NULL as null.
 */
export class DuckDbWarehouse implements Warehouse {
  readonly dialect = 'duckdb' as const;
  private readonly pool: DuckDBConnection[] = [];
  /** Every connection handed out, pooled or not, so that close() can release the file. */
  private readonly opened = new Set<DuckDBConnection>();
  /** Jobs running in this process, by job ID: a second caller waits for the first's result. */
  private readonly jobsInFlight = new Map<string, Promise<QueryResult>>();
  private mergeTurn: Promise<void> = Promise.resolve();

  private constructor(
    private readonly instance: DuckDBInstance,
    /** The database file, or ':memory:'. */
    readonly file: string,
    private readonly logger?: Logger,
  ) {}

  /** Opens (or creates) the database and the job registry `_consolidation.jobs`. */
  static async open(file: string, options: { logger?: Logger } = {}): Promise<DuckDbWarehouse> {
    let instance: DuckDBInstance;
    try {
      instance = await DuckDBInstance.create(file);
    } catch (error) {
      throw new ChainError(`Could not open the DuckDB database ${file} (a DuckDB file can be open in one process only): ${errorMessage(error)}`, { file }, { cause: error });
    }
    const warehouse = new DuckDbWarehouse(instance, file, options.logger);
    await warehouse.ensureSchema(JOBS_SCHEMA);
    await warehouse.withConnection((c) => c.run(`CREATE TABLE IF NOT EXISTS ${JOBS_TABLE} (job_id VARCHAR PRIMARY KEY, result JSON, finished_at TIMESTAMPTZ)`));
    return warehouse;
  }

  /** A new connection of this database (in UTC), for callers such as a seeder or a test; the caller closes it. */
  async connect(): Promise<DuckDBConnection> {
    const connection = await this.instance.connect();
    await connection.run("SET TimeZone='UTC'");
    // The pipeline's SQL (and the audit, which runs it through query()) names BigQuery functions.
    await defineBigQueryFunctions(connection);
    this.opened.add(connection);
    return connection;
  }

  /** Closes every connection it gave out and the database, releasing the file's lock. */
  async close(): Promise<void> {
    this.pool.splice(0);
    for (const connection of this.opened) {
      try {
        connection.closeSync();
      } catch {
        // already closed by its user
      }
    }
    this.opened.clear();
    this.instance.closeSync();
  }

  /**
   * Runs `work` on a pooled connection. A connection whose work failed is closed rather than
   * reused, so that no aborted transaction or half-read result leaks into the next caller.
   */
  async withConnection<T>(work: (connection: DuckDBConnection) => Promise<T>): Promise<T> {
    const connection = this.pool.pop() ?? (await this.connect());
    let healthy = false;
    try {
      const result = await work(connection);
      healthy = true;
      return result;
    } finally {
      this.release(connection, healthy);
    }
  }

  /** Runs `work` in one transaction on a pooled connection: committed if it succeeds, rolled back if not. */
  async transaction<T>(work: (connection: DuckDBConnection) => Promise<T>): Promise<T> {
    return this.withConnection(async (connection) => {
      await connection.run('BEGIN TRANSACTION');
      try {
        const result = await work(connection);
        await connection.run('COMMIT');
        return result;
      } catch (error) {
        await connection.run('ROLLBACK').catch(() => undefined);
        throw error;
      }
    });
  }

  async query(statement: Statement, options: QueryOptions = {}): Promise<QueryResult> {
    const context = { jobId: options.jobId, sql: excerpt(statement.sql) };
    try {
      const run = () => (options.jobId ? this.once(options.jobId, (c) => execute(c, statement, true)) : this.withConnection((c) => execute(c, statement, false)));
      // The whole job, commit included: the next MERGE must see this one's rows.
      return await (/^\s*MERGE\b/i.test(statement.sql) ? this.oneMergeAtATime(run) : run());
    } catch (error) {
      throw warehouseError(`DuckDB query failed${options.jobId ? ` (job ${options.jobId})` : ''}`, error, context);
    }
  }

  /**
   * DuckDB lets two transactions insert the same new key side by side (no constraint stops them),
   * where BigQuery serializes conflicting DML; so MERGEs here run one at a time, as they commit there.
   */
  private oneMergeAtATime<T>(work: () => Promise<T>): Promise<T> {
    const turn = this.mergeTurn.then(work, work);
    this.mergeTurn = turn.then(
      () => undefined,
      () => undefined,
    );
    return turn;
  }

  async *stream(statement: Statement, options: { pageSize?: number } = {}): AsyncIterable<Row[]> {
    const pageSize = Math.max(1, options.pageSize ?? 10_000);
    const connection = this.pool.pop() ?? (await this.connect());
    let healthy = false;
    try {
      const { values, types } = bindParams(statement.params);
      const result = await connection.stream(statement.sql, values, types);
      const names = result.deduplicatedColumnNames();
      let page: Row[] = [];
      for (;;) {
        const chunk = await result.fetchChunk();
        if (!chunk || chunk.rowCount === 0) break;
        // Column by column: one array per column of the chunk, not one per row.
        const columns = chunk.getColumns();
        for (let r = 0, rowCount = chunk.rowCount; r < rowCount; r++) {
          const row: Row = {};
          for (let c = 0; c < names.length; c++) row[names[c]] = normalizeValue(columns[c][r]);
          page.push(row);
          if (page.length >= pageSize) {
            yield page;
            page = [];
          }
        }
      }
      if (page.length > 0) yield page;
      healthy = true;
    } catch (error) {
      throw warehouseError('DuckDB streaming query failed', error, { sql: excerpt(statement.sql) });
    } finally {
      // A consumer that stops early leaves a half-read result: that connection is closed.
      this.release(connection, healthy);
    }
  }

  async loadNdjson(table: TableRef, uris: string[], schema: SchemaField[], options: { jobId: string }): Promise<void> {
    const target = this.qualify(table);
    try {
      await this.ensureSchema(table.dataset);
      await this.once(options.jobId, async (c) => {
        await c.run(`DROP TABLE IF EXISTS ${target}`);
        await c.run(duckdbCreateTable(target, schema));
        if (uris.length === 0) return { rows: [], dml: { inserted: 0, updated: 0, deleted: 0 } };
        const names = schema.map((f) => checkedIdentifier(f.name));
        const columns = schema.map((f) => `'${f.name}': '${duckdbType(f.type)}'`).join(', ');
        const loaded = await c.run(
          `INSERT INTO ${target} (${names.map((n) => `"${n}"`).join(', ')})
SELECT ${names.map((n) => `"${n}"`).join(', ')}
FROM read_json(CAST($files AS VARCHAR[]), format = 'newline_delimited', columns = {${columns}})`,
          { files: listValue(uris) },
          { files: LIST(VARCHAR) },
        );
        return { rows: [], dml: { inserted: loaded.rowsChanged, updated: 0, deleted: 0 } };
      });
    } catch (error) {
      throw warehouseError(`Loading ${uris.length} file(s) into ${this.plainName(table)} failed (job ${options.jobId})`, error, { table: this.plainName(table), jobId: options.jobId, firstFile: uris[0] });
    }
  }

  /** Creates the table from its schema. Partitioning and clustering are BigQuery storage options with no DuckDB equivalent: ignored here. */
  async ensureTable(table: TableRef, schema: SchemaField[], _options?: { partitionField?: string; clusterFields?: string[] }): Promise<void> {
    try {
      await this.ensureSchema(table.dataset);
      await retryOnConflict(() => this.withConnection((c) => c.run(duckdbCreateTable(this.qualify(table), schema))));
    } catch (error) {
      throw warehouseError(`Creating the table ${this.plainName(table)} failed`, error, { table: this.plainName(table) });
    }
  }

  async dropTable(table: TableRef): Promise<void> {
    try {
      await this.withConnection((c) => c.run(`DROP TABLE IF EXISTS ${this.qualify(table)}`));
    } catch (error) {
      throw warehouseError(`Dropping the table ${this.plainName(table)} failed`, error, { table: this.plainName(table) });
    }
  }

  /** DuckDB has no partitioning or clustering: it prunes row groups by their min/max, which rows appended in time order make narrow. */
  async tableLayout(_table: TableRef): Promise<TableLayout | null> {
    return null;
  }

  async tableExists(table: TableRef): Promise<boolean> {
    try {
      return await this.withConnection(async (c) => {
        const found = await c.runAndReadAll('SELECT count(*) FROM duckdb_tables() WHERE schema_name = $schema AND table_name = $table', { schema: table.dataset, table: table.table });
        return Number(found.getRows()[0][0]) > 0;
      });
    } catch (error) {
      throw warehouseError(`Checking whether the table ${this.plainName(table)} exists failed`, error, { table: this.plainName(table) });
    }
  }

  /** CREATE SCHEMA IF NOT EXISTS, retried when a concurrent creator of the same schema conflicts. */
  async ensureSchema(schema: string): Promise<void> {
    const name = checkedIdentifier(schema);
    await retryOnConflict(() => this.withConnection((c) => c.run(`CREATE SCHEMA IF NOT EXISTS "${name}"`)));
  }

  qualify(table: TableRef): string {
    return `"${checkedIdentifier(table.dataset)}"."${checkedIdentifier(table.table)}"`;
  }

  plainName(table: TableRef): string {
    return `${checkedIdentifier(table.dataset)}.${checkedIdentifier(table.table)}`;
  }

  /**
   * Runs `work` at most once per job ID, like a BigQuery job with a caller-chosen ID: the work and
   * the job's record commit in one transaction; a job ID already recorded returns the recorded
   * result without running; concurrent callers in this process share one run. A job that fails
   * records nothing (its transaction is rolled back), so the same job ID may be run again; in
   * BigQuery a failed job ID stays failed.
   */
  private once(jobId: string, work: (connection: DuckDBConnection) => Promise<QueryResult>): Promise<QueryResult> {
    const running = this.jobsInFlight.get(jobId);
    if (running) return running;
    const run = this.runJob(jobId, work).finally(() => this.jobsInFlight.delete(jobId));
    this.jobsInFlight.set(jobId, run);
    return run;
  }

  private async runJob(jobId: string, work: (connection: DuckDBConnection) => Promise<QueryResult>): Promise<QueryResult> {
    const recorded = await this.recordedJob(jobId);
    if (recorded) {
      this.logger?.debug('Job ID already ran; returning its recorded result', { jobId });
      return recorded;
    }
    try {
      return await this.transaction(async (c) => {
        const result = await work(c);
        await c.run(`INSERT INTO ${JOBS_TABLE} VALUES ($job_id, CAST($result AS JSON), now())`, { job_id: jobId, result: JSON.stringify(result) });
        return result;
      });
    } catch (error) {
      // Another connection committed the same job ID first: its result is the job's result.
      const winner = /duplicate key/i.test(errorMessage(error)) ? await this.recordedJob(jobId) : null;
      if (winner) return winner;
      throw error;
    }
  }

  private async recordedJob(jobId: string): Promise<QueryResult | null> {
    const reader = await this.withConnection((c) => c.runAndReadAll(`SELECT CAST(result AS VARCHAR) AS result FROM ${JOBS_TABLE} WHERE job_id = $job_id`, { job_id: jobId }));
    const row = reader.getRows()[0];
    return row ? (JSON.parse(String(row[0])) as QueryResult) : null;
  }

  private release(connection: DuckDBConnection, healthy: boolean): void {
    if (healthy && this.pool.length < MAX_IDLE_CONNECTIONS) {
      this.pool.push(connection);
    } else {
      connection.closeSync();
      this.opened.delete(connection);
    }
  }
}

const JOBS_SCHEMA = '_consolidation';
const JOBS_TABLE = `"${JOBS_SCHEMA}"."jobs"`;
const MAX_IDLE_CONNECTIONS = 8;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

function checkedIdentifier(name: string): string {
  if (!IDENTIFIER.test(name)) throw new ChainError(`"${name}" is not a valid DuckDB schema, table or column name (letters, digits and _ only)`, { name });
  return name;
}

function excerpt(sql: string): string {
  const flat = sql.replace(/\s+/g, ' ').trim();
  return flat.length > 300 ? `${flat.slice(0, 300)}...` : flat;
}

/** A DuckDB write-write conflict between two transactions (not a constraint violation). */
export function isDuckDbConflict(error: unknown): boolean {
  const message = errorMessage(error);
  return /conflict/i.test(message) && !/constraint/i.test(message);
}

/**
 * An error with context. DuckDB's transaction conflicts say "concurrent update", the words the
 * MERGE caller retries on (BigQuery: "Could not serialize access ... due to concurrent update").
 */
function warehouseError(what: string, error: unknown, context: Record<string, unknown>): ChainError {
  const message = errorMessage(error);
  const text = isDuckDbConflict(error) ? `${what}: could not serialize access due to concurrent update (DuckDB: ${message})` : `${what}: ${message}`;
  return new ChainError(text, context, { cause: error });
}

async function retryOnConflict<T>(work: () => Promise<T>, tries = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (!isDuckDbConflict(error) || attempt >= tries) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10 * attempt));
    }
  }
}

/**
 * Binds the typed parameters. The SQL casts every `$name` to its type, so timestamps and dates
 * go in as strings, INT64 as BIGINT, and arrays as VARCHAR lists (typed, so empty lists bind).
 */
export function bindParams(params: QueryParams): { values: Record<string, DuckDBValue>; types: Record<string, DuckDBType> } {
  const values: Record<string, DuckDBValue> = {};
  const types: Record<string, DuckDBType> = {};
  for (const [name, { type, value }] of Object.entries(params)) {
    const wrong = (needs: string) => new ChainError(`Query parameter $${name} of type ${type} needs ${needs}, got ${JSON.stringify(value)}`, { parameter: name });
    const isArray = type === 'STRING_ARRAY' || type === 'DATE_ARRAY';
    types[name] = isArray ? LIST(VARCHAR) : type === 'INT64' ? BIGINT : type === 'BOOL' ? BOOLEAN : VARCHAR;
    if (value === null) {
      values[name] = null;
      continue;
    }
    switch (type) {
      case 'STRING':
      case 'TIMESTAMP':
      case 'DATE':
        if (typeof value !== 'string') throw wrong('a string');
        values[name] = value;
        break;
      case 'INT64':
        if (!(typeof value === 'number' && Number.isSafeInteger(value)) && !(typeof value === 'string' && /^-?\d+$/.test(value))) throw wrong('an integer');
        values[name] = BigInt(value);
        break;
      case 'BOOL':
        if (typeof value !== 'boolean') throw wrong('a boolean');
        values[name] = value;
        break;
      case 'STRING_ARRAY':
      case 'DATE_ARRAY':
        if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw wrong('an array of strings');
        values[name] = listValue(value);
        break;
      default:
        throw wrong('a known parameter type');
    }
  }
  return { values, types };
}

/**
 * Runs one statement. A MERGE that cannot delete is counted as BigQuery reports it (inserted,
 * updated) from the target's row count before and after, in one transaction, without RETURNING
 * (a `RETURNING merge_action` tail is dropped); a MERGE that may delete is counted per returned
 * action instead. `inTransaction`: the caller already opened one.
 */
async function execute(connection: DuckDBConnection, statement: Statement, inTransaction: boolean): Promise<QueryResult> {
  const { values, types } = bindParams(statement.params);
  const counted = countedMerge(statement.sql);
  if (counted) return { rows: [], dml: await mergeWithCounts(connection, counted, values, types, inTransaction) };
  const result = await connection.run(statement.sql, values, types);
  if (result.returnType !== ResultReturnType.QUERY_RESULT) return { rows: [], ...changedRows(result) };
  if (result.columnCount === 1 && result.columnName(0) === 'merge_action') return { rows: [], dml: await countMergeActions(result) };
  const names = result.deduplicatedColumnNames();
  const rows: Row[] = [];
  for (let chunk = await result.fetchChunk(); chunk && chunk.rowCount > 0; chunk = await result.fetchChunk()) {
    for (const values of chunk.getRows()) rows.push(rowObject(names, values));
  }
  return { rows };
}

/** DML statistics of INSERT, UPDATE and DELETE (a MERGE without RETURNING reports no split: none). */
function changedRows(result: DuckDBMaterializedResult): { dml?: DmlStats } {
  if (result.returnType !== ResultReturnType.CHANGED_ROWS) return {};
  const n = result.rowsChanged;
  switch (result.statementType) {
    case StatementType.INSERT:
      return { dml: { inserted: n, updated: 0, deleted: 0 } };
    case StatementType.UPDATE:
      return { dml: { inserted: 0, updated: n, deleted: 0 } };
    case StatementType.DELETE:
      return { dml: { inserted: 0, updated: 0, deleted: n } };
    default:
      return {};
  }
}

/** `MERGE INTO "schema"."table" ...` without a DELETE action: its target and its SQL without any `RETURNING merge_action`. */
function countedMerge(sql: string): { target: string; sql: string } | undefined {
  const match = /^\s*MERGE\s+INTO\s+("[A-Za-z_][A-Za-z0-9_]*"\."[A-Za-z_][A-Za-z0-9_]*")[\s\S]*?(\s+RETURNING\s+merge_action\s*;?\s*)?$/i.exec(sql);
  if (!match || /\bTHEN\s+DELETE\b/i.test(sql)) return undefined;
  return { target: match[1], sql: match[2] ? sql.slice(0, sql.length - match[2].length) : sql };
}

/**
 * The MERGE and its counts without RETURNING, which materializes one row per changed row (for a
 * million rows, about a second: a third of the MERGE's time). DuckDB reports how many rows a MERGE
 * changed; the target's growth is how many it inserted (it deletes none), the rest it updated.
 */
async function mergeWithCounts(
  connection: DuckDBConnection,
  merge: { target: string; sql: string },
  values: Record<string, DuckDBValue>,
  types: Record<string, DuckDBType>,
  inTransaction: boolean,
): Promise<DmlStats> {
  const rowCount = async () => Number((await connection.runAndReadAll(`SELECT count(*) FROM ${merge.target}`)).getRows()[0][0]);
  if (!inTransaction) await connection.run('BEGIN TRANSACTION');
  try {
    const before = await rowCount();
    const changed = (await connection.run(merge.sql, values, types)).rowsChanged;
    const inserted = (await rowCount()) - before;
    if (!inTransaction) await connection.run('COMMIT');
    return { inserted, updated: changed - inserted, deleted: 0 };
  } catch (error) {
    if (!inTransaction) await connection.run('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

async function countMergeActions(result: DuckDBResult): Promise<DmlStats> {
  const dml: DmlStats = { inserted: 0, updated: 0, deleted: 0 };
  for (let chunk = await result.fetchChunk(); chunk && chunk.rowCount > 0; chunk = await result.fetchChunk()) {
    chunk.visitColumnValues(0, (action) => {
      if (action === 'INSERT') dml.inserted++;
      else if (action === 'UPDATE') dml.updated++;
      else if (action === 'DELETE') dml.deleted++;
    });
  }
  return dml;
}

function rowObject(names: string[], values: DuckDBValue[]): Row {
  const row: Row = {};
  for (let i = 0; i < names.length; i++) row[names[i]] = normalizeValue(values[i]);
  return row;
}

/** Epoch microseconds to an ISO string (milliseconds, or microseconds when it has them; floor, so times before 1970 round down too). */
function isoFromMicros(micros: bigint): string {
  const millis = micros / 1000n - (micros % 1000n < 0n ? 1n : 0n);
  const date = new Date(Number(millis));
  if (Number.isNaN(date.getTime())) return micros > 0n ? 'infinity' : '-infinity';
  const extra = micros - millis * 1000n;
  return extra === 0n ? date.toISOString() : date.toISOString().replace(/Z$/, `${String(extra).padStart(3, '0')}Z`);
}

/** A DECIMAL's exact value without trailing fractional zeros. */
function decimalString(value: DuckDBDecimalValue): string {
  const text = value.toString();
  return text.includes('.') ? text.replace(/0+$/, '').replace(/\.$/, '') : text;
}

/** A DuckDB value as a plain JSON value (see the class comment for the choices). */
export function normalizeValue(value: DuckDBValue | undefined): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === 'bigint') return Number(value);
  if (typeof value !== 'object') return value;
  if (value instanceof DuckDBTimestampTZValue || value instanceof DuckDBTimestampValue) return isoFromMicros(value.micros);
  if (value instanceof DuckDBTimestampMillisecondsValue) return isoFromMicros(value.millis * 1000n);
  if (value instanceof DuckDBTimestampSecondsValue) return isoFromMicros(value.seconds * 1_000_000n);
  if (value instanceof DuckDBTimestampNanosecondsValue) return isoFromMicros(value.nanos / 1000n);
  if (value instanceof DuckDBDateValue) return value.toString();
  if (value instanceof DuckDBDecimalValue) return decimalString(value);
  if (value instanceof DuckDBListValue || value instanceof DuckDBArrayValue) return value.items.map((item) => normalizeValue(item));
  if (value instanceof DuckDBStructValue) return Object.fromEntries(Object.entries(value.entries).map(([k, v]) => [k, normalizeValue(v)]));
  return value.toString();
}
