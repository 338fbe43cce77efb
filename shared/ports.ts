/**
 * The ports: what the four functions need from the outside world. Each has a Google Cloud
 * adapter (shared/gcp) and a local adapter (shared/local); the composition root picks one.
 */

/** Where "now" comes from; injectable so that windows are reproducible. */
export interface Clock {
  now(): Date;
}

export type Severity = 'DEBUG' | 'INFO' | 'NOTICE' | 'WARNING' | 'ERROR' | 'CRITICAL';

/** Structured fields that Cloud Logging indexes (batchId, jobName, messageId, ...). */
export type LogFields = Record<string, unknown>;

/** Writes one JSON line per entry with `severity` and `message` (Cloud Logging's format). */
export interface Logger {
  log(severity: Severity, message: string, fields?: LogFields): void;
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every entry. */
  child(fields: LogFields): Logger;
}

/** One stored version of an object. */
export interface StoredObject {
  data: string;
  /** Opaque version token; a conditional replace names the version it replaces. */
  generation: string;
}

/** The state bucket: every write is conditional so that two writers can never both win. */
export interface ObjectStore {
  /** The object's current version, or null when it does not exist. */
  read(path: string): Promise<StoredObject | null>;
  /** Creates the object only if it does not exist. Returns false (and writes nothing) if it does. */
  create(path: string, data: string): Promise<boolean>;
  /** Replaces the object only if its generation is still `generation`. Returns false otherwise. */
  replace(path: string, data: string, generation: string): Promise<boolean>;
  exists(path: string): Promise<boolean>;
  /** Names (full paths) of the objects under `prefix`, sorted. */
  list(prefix: string): Promise<string[]>;
  /** Deletes the object; deleting a missing object is not an error. */
  delete(path: string): Promise<void>;
  /** How a warehouse load job names this object (gs://bucket/path, or a local file path). */
  uri(path: string): string;
}

/** A table in the warehouse: BigQuery dataset.table, or DuckDB schema.table. */
export interface TableRef {
  dataset: string;
  table: string;
}

export type ParamType = 'STRING' | 'INT64' | 'BOOL' | 'TIMESTAMP' | 'DATE' | 'STRING_ARRAY' | 'DATE_ARRAY';

/** A typed query parameter: values never go into SQL text (design invariant 6). */
export interface QueryParam {
  type: ParamType;
  value: string | number | boolean | string[] | null;
}

export type QueryParams = Record<string, QueryParam>;

/** A statement rendered for one dialect, with its parameters. */
export interface Statement {
  sql: string;
  params: QueryParams;
}

export interface QueryOptions {
  /**
   * Deterministic job ID: running the same job ID twice runs it once, and the second call gets
   * the first call's result (BigQuery's 409 path: fetch the job and wait for it).
   */
  jobId?: string;
  labels?: Record<string, string>;
}

export type Row = Record<string, unknown>;

/** Rows changed by a DML statement. */
export interface DmlStats {
  inserted: number;
  updated: number;
  deleted: number;
}

export interface QueryResult {
  rows: Row[];
  dml?: DmlStats;
}

/** BigQuery JSON schema field (the format of shared/schema/*.json). */
export interface SchemaField {
  name: string;
  type: string;
  mode?: 'NULLABLE' | 'REQUIRED' | 'REPEATED';
  description?: string;
}

export type Dialect = 'bigquery' | 'duckdb';

/** How a table is laid out for pruning, as BigQuery's table metadata says. */
export interface TableLayout {
  /** Time-unit partitioning (DAY, HOUR, ...) on `field`; field undefined: ingestion time. Absent: none (or integer-range). */
  partitioning?: { type: string; field?: string };
  /** Clustering columns, in order; empty when the table is not clustered. */
  clustering: string[];
}

/** The warehouse: BigQuery, or a DuckDB file. */
export interface Warehouse {
  readonly dialect: Dialect;
  /** Runs a statement and returns its (small) result and DML statistics. */
  query(statement: Statement, options?: QueryOptions): Promise<QueryResult>;
  /** Streams a query's rows in pages without holding the whole result. */
  stream(statement: Statement, options?: { pageSize?: number }): AsyncIterable<Row[]>;
  /**
   * Loads newline-delimited JSON objects (by URI from ObjectStore.uri) into `table`, replacing
   * its content. Idempotent under the same jobId.
   */
  loadNdjson(table: TableRef, uris: string[], schema: SchemaField[], options: { jobId: string }): Promise<void>;
  /** Creates the table from the schema if it does not exist. */
  ensureTable(table: TableRef, schema: SchemaField[], options?: { partitionField?: string; clusterFields?: string[] }): Promise<void>;
  /** Drops the table if it exists. */
  dropTable(table: TableRef): Promise<void>;
  /**
   * The table's partitioning and clustering; null when the engine has no such layout (DuckDB,
   * which prunes row groups by their min/max instead, so rows appended in time order prune).
   */
  tableLayout(table: TableRef): Promise<TableLayout | null>;
  /** Whether the table exists. */
  tableExists(table: TableRef): Promise<boolean>;
  /** The table as the enrichment pipeline's SQL names it: `project.dataset.table` or "schema"."table". */
  qualify(table: TableRef): string;
  /** The table as a pipeline's write step names it, unquoted: project:dataset.table or schema.table. */
  plainName(table: TableRef): string;
}

/** A message as published on a topic. */
export interface OutgoingMessage {
  data: unknown;
  attributes?: Record<string, string>;
}

/** Pub/Sub topics, or the local bus. */
export interface Publisher {
  /** Publishes a JSON message; resolves with its message ID once the bus has accepted it. */
  publish(topic: string, message: OutgoingMessage): Promise<string>;
}

export interface LaunchRequest {
  jobName: string;
  batchId: string;
  attempt: number;
  /** Jinja variables of the pipeline file (table names as the pipeline's SQL needs them). */
  variables: Record<string, string>;
  labels: Record<string, string>;
}

export interface LaunchedJob {
  jobId: string;
  jobName: string;
  /** True when an active job of that name existed already and was adopted (409). */
  adopted: boolean;
}

/** Dataflow's terminal and non-terminal states, as the API names them. */
export type JobState =
  | 'JOB_STATE_UNKNOWN'
  | 'JOB_STATE_STOPPED'
  | 'JOB_STATE_RUNNING'
  | 'JOB_STATE_DONE'
  | 'JOB_STATE_FAILED'
  | 'JOB_STATE_CANCELLED'
  | 'JOB_STATE_UPDATED'
  | 'JOB_STATE_DRAINING'
  | 'JOB_STATE_DRAINED'
  | 'JOB_STATE_PENDING'
  | 'JOB_STATE_CANCELLING'
  | 'JOB_STATE_QUEUED'
  | 'JOB_STATE_RESOURCE_CLEANING_UP';

/** Starts the templated enrichment job (Dataflow Flex Template, or the local runner). */
export interface JobLauncher {
  launch(request: LaunchRequest): Promise<LaunchedJob>;
  /** The job's current state, or undefined when the service knows no job of that ID. */
  jobState(jobId: string): Promise<JobState | undefined>;
}

/** What a replay of listed operations came to. */
export interface ReplayOutcome {
  ok: boolean;
  /** The replay's batch, when one was sealed. */
  batchId?: string;
  /** True when the adapter followed the batch to its MERGE (the local stack); false when it was only sealed. */
  merged: boolean;
  detail: string;
}

/** Replays listed operations through publishOps' replay path (`{"ids": [...]}`): the audit's repair. */
export interface Replayer {
  /** Replays at most REPLAY_MAX_IDS operations. */
  replayIds(ids: string[]): Promise<ReplayOutcome>;
}
