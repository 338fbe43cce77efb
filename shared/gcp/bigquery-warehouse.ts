import { BigQuery, BigQueryDate, BigQueryDatetime, BigQueryTime, BigQueryTimestamp, Geography, type Job, type JobMetadata, type Query, type TableMetadata } from '@google-cloud/bigquery';
import type { File, Storage } from '@google-cloud/storage';
import { ChainError, errorMessage } from '../errors';
import type { DmlStats, Logger, QueryOptions, QueryParam, QueryParams, QueryResult, Row, SchemaField, Statement, TableLayout, TableRef, Warehouse } from '../ports';

/**
 * The warehouse on BigQuery. Every job runs in one location; a job with our own job ID runs at
 * most once (a repeat gets 409 "Already Exists", and then waits for and returns the first run).
 * A job ID whose run failed cannot run again, so a repeat then runs the statement under the next
 * ID of the sequence id, id_run2, ... (a failed job changed nothing).
 */
export interface BigQueryWarehouseOptions {
  bigquery: BigQuery;
  /** Turns the gs:// URIs of loadNdjson into the Storage File objects that load jobs take. */
  storage: Storage;
  project: string;
  /** Location of the jobs (the datasets' location), e.g. EU. */
  location: string;
  logger?: Logger;
  /** First wait between two polls of a load job (doubles up to 5 s); tests set 0. */
  pollIntervalMs?: number;
}

/** A query parameter as @google-cloud/bigquery takes it: a value, and its type given explicitly. */
export interface BigQueryParams {
  params: Record<string, unknown>;
  types: Record<string, string | string[]>;
}

const MAX_POLL_INTERVAL_MS = 5_000;
/** How many job IDs of one sequence (id, id_run2, ...) a statement may use after earlier runs failed. */
const MAX_RUNS_PER_JOB_ID = 5;

/** The job ID had already run, and that run failed. */
class EarlierRunFailed extends Error {
  constructor(readonly cause: unknown) {
    super(errorMessage(cause));
  }
}

export class BigQueryWarehouse implements Warehouse {
  readonly dialect = 'bigquery' as const;
  private readonly bigquery: BigQuery;
  private readonly storage: Storage;
  private readonly project: string;
  private readonly location: string;
  private readonly logger?: Logger;
  private readonly pollIntervalMs: number;

  constructor(options: BigQueryWarehouseOptions) {
    this.bigquery = options.bigquery;
    this.storage = options.storage;
    this.project = options.project;
    this.location = options.location;
    this.logger = options.logger;
    this.pollIntervalMs = options.pollIntervalMs ?? 1_000;
  }

  /**
   * Runs a statement as a query job and waits for it. With a jobId, a second run of the same job
   * ID returns the first run's result (or throws its error) instead of running again.
   */
  async query(statement: Statement, options: QueryOptions = {}): Promise<QueryResult> {
    for (let run = 1; ; run++) {
      const jobId = options.jobId && run > 1 ? `${options.jobId}_run${run}` : options.jobId;
      try {
        return await this.queryJob(statement, jobId, options.labels);
      } catch (error) {
        if (!(error instanceof EarlierRunFailed) || run >= MAX_RUNS_PER_JOB_ID) throw error instanceof EarlierRunFailed ? error.cause : error;
        // A failed job changed nothing (BigQuery jobs are atomic), and its ID can never run
        // again: the next ID of the sequence runs it. A success anywhere in the sequence is
        // found by every later repeat, so the statement still takes effect once.
        this.logger?.warn('An earlier run of this job ID failed; running the statement again under the next job ID', { jobId, nextJobId: `${options.jobId}_run${run + 1}`, cause: errorMessage(error.cause) });
      }
    }
  }

  private async queryJob(statement: Statement, jobId: string | undefined, labels: Record<string, string> | undefined): Promise<QueryResult> {
    const request: Query = {
      query: statement.sql,
      ...toBigQueryParams(statement.params),
      location: this.location,
      ...(jobId ? { jobId } : {}),
      ...(labels ? { labels } : {}),
      useLegacySql: false,
    };
    let job: Job;
    let repeat = false;
    try {
      [job] = await this.bigquery.createQueryJob(request);
    } catch (error) {
      if (!jobId || !isAlreadyExists(error)) throw jobError('BigQuery query job could not start', jobId, error);
      this.logger?.info('BigQuery job already exists (a repeat); waiting for its result', { jobId });
      job = this.bigquery.job(jobId, { location: this.location });
      repeat = true;
    }
    const id = jobId ?? job.id;
    try {
      const [rows] = await job.getQueryResults();
      const [metadata] = await job.getMetadata();
      throwIfFailed(metadata, id);
      return { rows: rows.map(normalizeRow), ...dmlOf(metadata) };
    } catch (error) {
      const failure = error instanceof ChainError ? error : jobError('BigQuery query job failed', id, error);
      throw repeat ? new EarlierRunFailed(failure) : failure;
    }
  }

  /** Streams the rows in pages of up to pageSize (default 1,000); only one page is held at a time. */
  async *stream(statement: Statement, options: { pageSize?: number } = {}): AsyncIterable<Row[]> {
    const pageSize = options.pageSize ?? 1_000;
    const rows = this.bigquery.createQueryStream({ query: statement.sql, ...toBigQueryParams(statement.params), location: this.location });
    let page: Row[] = [];
    let streamed = 0;
    try {
      for await (const row of rows) {
        page.push(normalizeRow(row as Row));
        streamed++;
        if (page.length >= pageSize) {
          yield page;
          page = [];
        }
      }
    } catch (error) {
      throw new ChainError(`BigQuery query stream failed after ${streamed} rows: ${errorMessage(error)}`, { location: this.location }, { cause: error });
    }
    if (page.length > 0) yield page;
  }

  /**
   * Loads NDJSON objects into `table` (replacing its content) with a load job of ID jobId, and
   * waits for it; a repeat of the job ID waits for the existing job instead.
   */
  async loadNdjson(table: TableRef, uris: string[], schema: SchemaField[], options: { jobId: string }): Promise<void> {
    for (let run = 1; ; run++) {
      const jobId = run > 1 ? `${options.jobId}_run${run}` : options.jobId;
      try {
        return await this.loadJob(table, uris, schema, jobId);
      } catch (error) {
        if (!(error instanceof EarlierRunFailed) || run >= MAX_RUNS_PER_JOB_ID) throw error instanceof EarlierRunFailed ? error.cause : error;
        this.logger?.warn('An earlier load under this job ID failed; loading again under the next job ID', { jobId, nextJobId: `${options.jobId}_run${run + 1}`, cause: errorMessage(error.cause) });
      }
    }
  }

  private async loadJob(table: TableRef, uris: string[], schema: SchemaField[], jobId: string): Promise<void> {
    const context = { jobId, table: this.plainName(table) };
    if (uris.length === 0) throw new ChainError('A load job needs at least one source URI', context);
    const files = uris.map((uri) => this.fileOf(uri));
    let job: Job;
    let repeat = false;
    try {
      [job] = await this.bigquery.dataset(table.dataset).table(table.table).createLoadJob(files, {
        sourceFormat: 'NEWLINE_DELIMITED_JSON',
        writeDisposition: 'WRITE_TRUNCATE',
        createDisposition: 'CREATE_IF_NEEDED',
        schema: { fields: schema },
        jobId,
        location: this.location,
      });
    } catch (error) {
      if (!isAlreadyExists(error)) throw new ChainError(`BigQuery load job ${jobId} into ${context.table} could not start: ${errorMessage(error)}`, context, { cause: error });
      this.logger?.info('BigQuery load job already exists (a repeat); waiting for it', context);
      job = this.bigquery.job(jobId, { location: this.location });
      repeat = true;
    }
    try {
      await this.waitForJob(job, jobId, context.table);
    } catch (error) {
      throw repeat ? new EarlierRunFailed(error) : error;
    }
  }

  /** Creates the table (day-partitioned and clustered when asked) unless it exists. */
  async ensureTable(ref: TableRef, schema: SchemaField[], options: { partitionField?: string; clusterFields?: string[] } = {}): Promise<void> {
    const dataset = this.bigquery.dataset(ref.dataset);
    try {
      const [exists] = await dataset.table(ref.table).exists();
      if (exists) return;
      const metadata: TableMetadata = {
        schema: { fields: schema },
        ...(options.partitionField ? { timePartitioning: { type: 'DAY', field: options.partitionField } } : {}),
        ...(options.clusterFields?.length ? { clustering: { fields: options.clusterFields } } : {}),
      };
      await dataset.createTable(ref.table, metadata);
    } catch (error) {
      if (isAlreadyExists(error)) return; // created concurrently
      throw new ChainError(`Could not create the table ${this.plainName(ref)}: ${errorMessage(error)}`, { table: this.plainName(ref) }, { cause: error });
    }
  }

  async tableExists(ref: TableRef): Promise<boolean> {
    try {
      const [exists] = await this.bigquery.dataset(ref.dataset).table(ref.table).exists();
      return exists;
    } catch (error) {
      throw new ChainError(`Could not check whether the table ${this.plainName(ref)} exists: ${errorMessage(error)}`, { table: this.plainName(ref) }, { cause: error });
    }
  }

  /** Drops the table; a missing table is not an error. */
  async dropTable(ref: TableRef): Promise<void> {
    try {
      await this.bigquery.dataset(ref.dataset).table(ref.table).delete();
    } catch (error) {
      if (codeOf(error) === 404) return;
      throw new ChainError(`Could not drop the table ${this.plainName(ref)}: ${errorMessage(error)}`, { table: this.plainName(ref) }, { cause: error });
    }
  }

  /** The table's time partitioning and clustering, from its metadata (tables.get). */
  async tableLayout(ref: TableRef): Promise<TableLayout> {
    let metadata: TableMetadata;
    try {
      [metadata] = await this.bigquery.dataset(ref.dataset).table(ref.table).getMetadata();
    } catch (error) {
      throw new ChainError(`Could not read the metadata of the table ${this.plainName(ref)}: ${errorMessage(error)}`, { table: this.plainName(ref) }, { cause: error });
    }
    const partitioning = metadata.timePartitioning;
    return {
      ...(partitioning ? { partitioning: { type: partitioning.type ?? 'DAY', ...(partitioning.field ? { field: partitioning.field } : {}) } } : {}),
      clustering: [...(metadata.clustering?.fields ?? [])],
    };
  }

  /** `project.dataset.table`, backticked, as BigQuery SQL names a table. */
  qualify(ref: TableRef): string {
    return `\`${this.project}.${ref.dataset}.${ref.table}\``;
  }

  /** project:dataset.table, as Beam's WriteToBigQuery names a table. */
  plainName(ref: TableRef): string {
    return `${this.project}:${ref.dataset}.${ref.table}`;
  }

  private fileOf(uri: string): File {
    const match = /^gs:\/\/([^/]+)\/(.+)$/.exec(uri);
    if (!match) throw new ChainError(`Not a gs:// object URI: ${uri}`, { uri });
    return this.storage.bucket(match[1]).file(match[2]);
  }

  /** Polls the job until it is DONE; throws the job's error if it failed. */
  private async waitForJob(job: Job, jobId: string, table: string): Promise<JobMetadata> {
    let interval = this.pollIntervalMs;
    for (;;) {
      let metadata: JobMetadata;
      try {
        [metadata] = await job.getMetadata();
      } catch (error) {
        throw new ChainError(`Could not read the state of BigQuery job ${jobId}: ${errorMessage(error)}`, { jobId, table }, { cause: error });
      }
      if (metadata.status?.state === 'DONE') {
        throwIfFailed(metadata, jobId, { table });
        return metadata;
      }
      await new Promise((resolve) => setTimeout(resolve, interval));
      interval = Math.min(Math.max(interval * 2, 1), MAX_POLL_INTERVAL_MS);
    }
  }
}

/**
 * Our typed parameters as the client takes them. Every parameter gets an explicit type (an empty
 * array cannot be typed from its value), and TIMESTAMP/DATE values are wrapped in the client's
 * classes: the client sends a plain string under a TIMESTAMP or DATE type as no value at all.
 */
export function toBigQueryParams(params: QueryParams): BigQueryParams {
  const out: BigQueryParams = { params: {}, types: {} };
  for (const [name, param] of Object.entries(params)) {
    const { value, type } = convertParam(name, param);
    out.params[name] = value;
    out.types[name] = type;
  }
  return out;
}

function convertParam(name: string, param: QueryParam): { value: unknown; type: string | string[] } {
  const { value } = param;
  const bad = (expected: string) => new ChainError(`Query parameter @${name} of type ${param.type} must be ${expected}, got ${JSON.stringify(value)}`, { parameter: name, type: param.type });
  const list = (): string[] => {
    if (value === null) return []; // BigQuery reads a NULL array as an empty one
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw bad('an array of strings');
    return value;
  };
  const text = (): string => {
    if (typeof value !== 'string') throw bad('a string');
    return value;
  };
  if (value === null && !param.type.endsWith('_ARRAY')) return { value: null, type: param.type };
  switch (param.type) {
    case 'TIMESTAMP':
      return { value: BigQuery.timestamp(text()), type: 'TIMESTAMP' };
    case 'DATE':
      return { value: BigQuery.date(text()), type: 'DATE' };
    case 'STRING':
      return { value: text(), type: 'STRING' };
    case 'INT64':
      if (typeof value !== 'number' && !(typeof value === 'string' && /^-?\d+$/.test(value))) throw bad('an integer');
      return { value, type: 'INT64' };
    case 'BOOL':
      if (typeof value !== 'boolean') throw bad('a boolean');
      return { value, type: 'BOOL' };
    case 'STRING_ARRAY':
      return { value: list(), type: ['STRING'] };
    case 'DATE_ARRAY':
      return { value: list().map((d) => BigQuery.date(d)), type: ['DATE'] };
  }
}

/** '…00.123456000Z' (the client's nanosecond form) -> '…00.123456Z'; milliseconds always kept. */
function trimFraction(iso: string): string {
  return iso.replace(/\.(\d{3}\d*?)0*Z$/, '.$1Z');
}

function isBig(value: object): value is { toFixed(): string } {
  const big = value as { c?: unknown; e?: unknown; s?: unknown; toFixed?: unknown };
  return Array.isArray(big.c) && typeof big.e === 'number' && typeof big.s === 'number' && typeof big.toFixed === 'function';
}

/**
 * A value as plain JSON: TIMESTAMP -> ISO string (milliseconds, or microseconds when it has them), DATE/DATETIME/TIME/GEOGRAPHY -> their text,
 * NUMERIC/BIGNUMERIC -> decimal string, BYTES -> base64; INT64 is already a number.
 */
export function normalizeValue(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value !== 'object') return value;
  if (value instanceof BigQueryTimestamp) return trimFraction(value.value);
  if (value instanceof BigQueryDate || value instanceof BigQueryDatetime || value instanceof BigQueryTime || value instanceof Geography) {
    return value.value;
  }
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if (Array.isArray(value)) return value.map(normalizeValue);
  if (isBig(value)) return value.toFixed();
  if (value instanceof Date) return value.toISOString();
  return normalizeRow(value as Row);
}

/** A row (or STRUCT) with every value as plain JSON. */
export function normalizeRow(row: Row): Row {
  const out: Row = {};
  for (const [key, value] of Object.entries(row)) out[key] = normalizeValue(value);
  return out;
}

function dmlOf(metadata: JobMetadata): { dml?: DmlStats } {
  const stats = metadata.statistics?.query?.dmlStats;
  if (!stats) return {};
  return { dml: { inserted: Number(stats.insertedRowCount ?? 0), updated: Number(stats.updatedRowCount ?? 0), deleted: Number(stats.deletedRowCount ?? 0) } };
}

function throwIfFailed(metadata: JobMetadata, jobId: string | undefined, context: Record<string, unknown> = {}): void {
  const failure = metadata.status?.errorResult;
  if (!failure) return;
  throw new ChainError(`BigQuery job ${jobId} failed: ${failure.message ?? failure.reason ?? 'unknown error'}`, { ...context, jobId, errors: metadata.status?.errors ?? [failure] });
}

function jobError(what: string, jobId: string | undefined, error: unknown): ChainError {
  return new ChainError(`${what}${jobId ? ` (job ${jobId})` : ''}: ${errorMessage(error)}`, { jobId }, { cause: error });
}

function codeOf(error: unknown): unknown {
  return (error as { code?: unknown } | null)?.code;
}

function isAlreadyExists(error: unknown): boolean {
  return codeOf(error) === 409;
}
