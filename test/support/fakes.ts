/**
 * Fakes of the ports (shared/ports.ts) for unit tests of the four functions, and helpers that
 * build the events and HTTP requests the functions receive. Every fake records what it was asked
 * to do, so that tests assert on behaviour a user would notice: what was published, what is in
 * the state bucket, which statements ran, what was logged.
 */
import type { CloudEvent, Request, Response } from '@google-cloud/functions-framework';
import { paths, type BatchState, type BatchStatus, type Manifest } from '../../shared/batch';
import { loadConfig, type Config } from '../../shared/config';
import type {
  Clock,
  DmlStats,
  JobLauncher,
  JobState,
  LaunchRequest,
  LaunchedJob,
  LogFields,
  Logger,
  ObjectStore,
  OutgoingMessage,
  Publisher,
  QueryOptions,
  QueryResult,
  Row,
  SchemaField,
  Severity,
  Statement,
  StoredObject,
  TableLayout,
  TableRef,
  Warehouse,
} from '../../shared/ports';
import type { ChainDependencies } from '../../functions/dependencies';

/** Lets other pending work run (a macrotask), so that concurrent calls really interleave. */
export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Runs `n` macrotasks, enough for chains of awaits on the fakes to settle. */
export async function settle(n = 50): Promise<void> {
  for (let i = 0; i < n; i++) await tick();
}

// ---------------------------------------------------------------------------------------------
// Object store

export type StoreOperation = 'read' | 'create' | 'replace' | 'exists' | 'list' | 'delete';

interface StoreHook {
  operation: StoreOperation;
  path: string | RegExp;
  times: number;
  run: (path: string) => void | Promise<void>;
}

/**
 * The state bucket in memory, with the port's semantics: `create` is create-only, `replace`
 * matches the generation, every write makes a new generation. A test can inject a failure (or
 * run any code) just before an operation on a path.
 */
export class MemoryObjectStore implements ObjectStore {
  private readonly objects = new Map<string, StoredObject>();
  private nextGeneration = 1;
  private readonly hooks: StoreHook[] = [];
  /** Every call, in order, with its outcome. */
  readonly calls: { operation: StoreOperation; path: string; result?: unknown }[] = [];
  /** Successful writes (create, replace, put) per path. */
  readonly writes = new Map<string, number>();

  constructor(private readonly bucket = 'state-bucket') {}

  /** Unconditional write, for a test's setup (or another writer); returns the new generation. */
  put(path: string, data: string): string {
    const generation = String(this.nextGeneration++);
    this.objects.set(path, { data, generation });
    this.writes.set(path, (this.writes.get(path) ?? 0) + 1);
    return generation;
  }

  /** The object's data, or undefined. */
  get(path: string): string | undefined {
    return this.objects.get(path)?.data;
  }

  getJson<T = unknown>(path: string): T | undefined {
    const data = this.get(path);
    return data === undefined ? undefined : (JSON.parse(data) as T);
  }

  generationOf(path: string): string | undefined {
    return this.objects.get(path)?.generation;
  }

  /** Every object's path, sorted. */
  paths(prefix = ''): string[] {
    return [...this.objects.keys()].filter((p) => p.startsWith(prefix)).sort();
  }

  /** Makes the next `times` calls of `operation` on a matching path fail with `error`. */
  failOn(operation: StoreOperation, path: string | RegExp, error: Error = new Error(`injected ${operation} failure`), times = 1): this {
    return this.before(operation, path, () => {
      throw error;
    }, times);
  }

  /** Runs `run` just before the next `times` calls of `operation` on a matching path. */
  before(operation: StoreOperation, path: string | RegExp, run: (path: string) => void | Promise<void>, times = 1): this {
    this.hooks.push({ operation, path, times, run });
    return this;
  }

  count(operation: StoreOperation, path?: string | RegExp): number {
    return this.calls.filter((c) => c.operation === operation && (path === undefined || matches(path, c.path))).length;
  }

  private async enter(operation: StoreOperation, path: string): Promise<void> {
    await tick();
    const hook = this.hooks.find((h) => h.times > 0 && h.operation === operation && matches(h.path, path));
    if (hook) {
      hook.times--;
      this.calls.push({ operation, path, result: 'hooked' });
      await hook.run(path);
    }
  }

  async read(path: string): Promise<StoredObject | null> {
    await this.enter('read', path);
    const object = this.objects.get(path);
    this.calls.push({ operation: 'read', path, result: object ? object.generation : null });
    return object ? { ...object } : null;
  }

  async create(path: string, data: string): Promise<boolean> {
    await this.enter('create', path);
    const created = !this.objects.has(path);
    if (created) this.put(path, data);
    this.calls.push({ operation: 'create', path, result: created });
    return created;
  }

  async replace(path: string, data: string, generation: string): Promise<boolean> {
    await this.enter('replace', path);
    const current = this.objects.get(path);
    const replaced = current !== undefined && current.generation === generation;
    if (replaced) this.put(path, data);
    this.calls.push({ operation: 'replace', path, result: replaced });
    return replaced;
  }

  async exists(path: string): Promise<boolean> {
    await this.enter('exists', path);
    const found = this.objects.has(path);
    this.calls.push({ operation: 'exists', path, result: found });
    return found;
  }

  async list(prefix: string): Promise<string[]> {
    await this.enter('list', prefix);
    const names = this.paths(prefix);
    this.calls.push({ operation: 'list', path: prefix, result: names.length });
    return names;
  }

  async delete(path: string): Promise<void> {
    await this.enter('delete', path);
    this.objects.delete(path);
    this.calls.push({ operation: 'delete', path });
  }

  uri(path: string): string {
    return `gs://${this.bucket}/${path}`;
  }
}

function matches(pattern: string | RegExp, value: string): boolean {
  return typeof pattern === 'string' ? pattern === value : pattern.test(value);
}

// ---------------------------------------------------------------------------------------------
// Publisher

export interface PublishedMessage {
  topic: string;
  data: unknown;
  attributes: Record<string, string>;
  messageId: string;
}

interface HeldPublish {
  topic: string;
  message: OutgoingMessage;
  resolve: () => void;
  reject: (error: Error) => void;
}

/**
 * Records every accepted message (topic, data as JSON would carry it, attributes) and answers
 * message IDs. Can fail chosen publishes, or hold every publish until the test releases it.
 */
export class RecordingPublisher implements Publisher {
  readonly messages: PublishedMessage[] = [];
  /** Publish calls so far, failed ones included. */
  calls = 0;
  inFlight = 0;
  maxInFlight = 0;
  /** Publishes waiting for the test (only when holding). */
  readonly held: HeldPublish[] = [];
  private holding = false;
  private readonly failures = new Map<number, Error>();
  private readonly topicFailures: { topic: string; times: number; error: Error }[] = [];

  /** Makes the nth publish call (1-based, counting every call) fail. */
  failNth(n: number, error: Error = new Error(`injected failure of publish #${n}`)): this {
    this.failures.set(n, error);
    return this;
  }

  /** Makes the next `times` publishes on `topic` fail. */
  failOnTopic(topic: string, times = 1, error: Error = new Error(`injected failure of a publish on ${topic}`)): this {
    this.topicFailures.push({ topic, times, error });
    return this;
  }

  /** From now on, publishes wait until `release` (or `rejectHeld`) settles them. */
  hold(): this {
    this.holding = true;
    return this;
  }

  /** Accepts the oldest `n` held publishes. */
  release(n = 1): void {
    for (const held of this.held.splice(0, n)) held.resolve();
  }

  /** Fails the oldest held publish. */
  rejectHeld(error: Error = new Error('injected failure of a held publish')): void {
    this.held.shift()?.reject(error);
  }

  /** Stops holding and accepts everything held. */
  releaseAll(): void {
    this.holding = false;
    this.release(this.held.length);
  }

  on(topic: string): PublishedMessage[] {
    return this.messages.filter((m) => m.topic === topic);
  }

  async publish(topic: string, message: OutgoingMessage): Promise<string> {
    const n = ++this.calls;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await tick();
      if (this.holding) {
        await new Promise<void>((resolve, reject) => this.held.push({ topic, message, resolve, reject }));
      }
      const failure = this.failures.get(n) ?? this.takeTopicFailure(topic);
      if (failure) throw failure;
      const messageId = `msg-${n}`;
      this.messages.push({ topic, data: JSON.parse(JSON.stringify(message.data)), attributes: { ...(message.attributes ?? {}) }, messageId });
      return messageId;
    } finally {
      this.inFlight--;
    }
  }

  private takeTopicFailure(topic: string): Error | undefined {
    const failure = this.topicFailures.find((f) => f.topic === topic && f.times > 0);
    if (!failure) return undefined;
    failure.times--;
    return failure.error;
  }
}

// ---------------------------------------------------------------------------------------------
// Warehouse

/** Which of the chain's statements this is (shared/sql/statements.ts). */
export type StatementKind = 'changed' | 'rejected' | 'beyond' | 'profile' | 'merge' | 'other';

export function statementKind(sql: string): StatementKind {
  if (/^MERGE INTO/.test(sql)) return 'merge';
  if (/missing_operation_id/.test(sql)) return 'rejected';
  if (/old_operation_rows/.test(sql)) return 'beyond';
  if (/^SELECT DISTINCT operation_id/.test(sql)) return 'changed';
  if (/reconciliation_status, COUNT\(DISTINCT operation_id\)/.test(sql)) return 'profile';
  return 'other';
}

export interface RecordedStatement {
  kind: StatementKind;
  sql: string;
  params: Statement['params'];
  options?: QueryOptions;
  /** True when the job ID had run before, so the warehouse answered the earlier result (BigQuery's 409 path). */
  replayed: boolean;
}

/**
 * A scripted warehouse in the DuckDB dialect: the test says which IDs changed, how many rows are
 * rejected, what the enriched table's profile is and what the MERGE reports; the fake records
 * every statement, stream, load and drop. A job ID that already ran is not run again: the call
 * gets the first run's result, as BigQuery's deterministic job IDs behave.
 */
export class FakeWarehouse implements Warehouse {
  readonly dialect = 'duckdb' as const;
  changedIds: string[] = [];
  rejected = { missing_operation_id: 0, missing_source_timestamp: 0 };
  beyond = { old_operation_rows: 0, unmatched_transactions: 0 };
  profile: Row[] = [];
  mergeStats: DmlStats = { inserted: 0, updated: 0, deleted: 0 };

  readonly statements: RecordedStatement[] = [];
  readonly streams: { statement: Statement; pageSize?: number }[] = [];
  /** Pages handed out by stream(), over all streams. */
  pagesRead = 0;
  readonly loads: { table: TableRef; uris: string[]; schema: SchemaField[]; jobId: string }[] = [];
  readonly drops: TableRef[] = [];
  readonly ensured: TableRef[] = [];
  /** Tables (dataset.table) that do not exist; every other table does. */
  readonly absent = new Set<string>();
  private readonly jobs = new Map<string, QueryResult>();
  private readonly failures: { kind: StatementKind | 'stream' | 'load' | 'drop'; error: Error }[] = [];

  constructor(private readonly journal?: string[]) {}

  /** Makes the next statement of `kind` (or stream/load/drop) fail with `error`; queue several for several. */
  failNext(kind: StatementKind | 'stream' | 'load' | 'drop', error: Error): this {
    this.failures.push({ kind, error });
    return this;
  }

  /** Statements of a kind that really ran (not answered from an earlier job). */
  executed(kind: StatementKind): RecordedStatement[] {
    return this.statements.filter((s) => s.kind === kind && !s.replayed);
  }

  of(kind: StatementKind): RecordedStatement[] {
    return this.statements.filter((s) => s.kind === kind);
  }

  private takeFailure(kind: StatementKind | 'stream' | 'load' | 'drop'): Error | undefined {
    const index = this.failures.findIndex((f) => f.kind === kind);
    return index < 0 ? undefined : this.failures.splice(index, 1)[0].error;
  }

  async query(statement: Statement, options?: QueryOptions): Promise<QueryResult> {
    await tick();
    const kind = statementKind(statement.sql);
    const earlier = options?.jobId !== undefined ? this.jobs.get(options.jobId) : undefined;
    this.statements.push({ kind, sql: statement.sql, params: structuredClone(statement.params), options: options && structuredClone(options), replayed: earlier !== undefined });
    this.journal?.push(`query:${kind}`);
    if (earlier) return structuredClone(earlier);
    const failure = this.takeFailure(kind);
    if (failure) throw failure;
    const result = this.answer(kind);
    if (options?.jobId !== undefined) this.jobs.set(options.jobId, structuredClone(result));
    return result;
  }

  private answer(kind: StatementKind): QueryResult {
    switch (kind) {
      case 'rejected':
        return { rows: [{ ...this.rejected }] };
      case 'beyond':
        return { rows: [{ ...this.beyond }] };
      case 'profile':
        return { rows: this.profile.map((r) => ({ ...r })) };
      case 'merge':
        return { rows: [], dml: { ...this.mergeStats } };
      case 'changed':
        return { rows: this.changedIds.map((operation_id) => ({ operation_id })) };
      default:
        return { rows: [] };
    }
  }

  async *stream(statement: Statement, options?: { pageSize?: number }): AsyncIterable<Row[]> {
    this.streams.push({ statement: { sql: statement.sql, params: structuredClone(statement.params) }, pageSize: options?.pageSize });
    this.journal?.push(`stream:${statementKind(statement.sql)}`);
    const failure = this.takeFailure('stream');
    if (failure) throw failure;
    const rows = this.answer(statementKind(statement.sql)).rows;
    const size = options?.pageSize ?? 1000;
    for (let i = 0; i < rows.length; i += size) {
      await tick();
      this.pagesRead++;
      yield rows.slice(i, i + size);
    }
  }

  async loadNdjson(table: TableRef, uris: string[], schema: SchemaField[], options: { jobId: string }): Promise<void> {
    await tick();
    this.journal?.push('load');
    const failure = this.takeFailure('load');
    if (failure) throw failure;
    this.loads.push({ table: { ...table }, uris: [...uris], schema, jobId: options.jobId });
  }

  async ensureTable(table: TableRef): Promise<void> {
    this.ensured.push({ ...table });
  }

  /** What tableLayout answers per table name (dataset.table); null: an engine without partitioning. */
  layouts = new Map<string, TableLayout | Error>();
  readonly layoutReads: TableRef[] = [];

  async tableLayout(table: TableRef): Promise<TableLayout | null> {
    await tick();
    this.layoutReads.push({ ...table });
    const layout = this.layouts.get(this.plainName(table));
    if (layout instanceof Error) throw layout;
    return layout ?? null;
  }

  async tableExists(table: TableRef): Promise<boolean> {
    await tick();
    return !this.absent.has(this.plainName(table));
  }

  async dropTable(table: TableRef): Promise<void> {
    await tick();
    const failure = this.takeFailure('drop');
    if (failure) throw failure;
    this.drops.push({ ...table });
  }

  qualify(table: TableRef): string {
    return `"${table.dataset}"."${table.table}"`;
  }

  plainName(table: TableRef): string {
    return `${table.dataset}.${table.table}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Launcher

/**
 * Records launch requests and answers jobs. Like Dataflow, a second launch of an active job name
 * is answered with that job, adopted (the 409 path); a test can also force the next answer to be
 * an adoption, or a failure. Every job it launched is JOB_STATE_RUNNING until the test says
 * otherwise (setJobState); a job it never heard of is unknown (undefined), as NOT_FOUND is.
 */
export class FakeLauncher implements JobLauncher {
  readonly requests: LaunchRequest[] = [];
  /** Job IDs asked about through jobState, in order. */
  readonly stateQueries: string[] = [];
  private readonly active = new Map<string, string>();
  private readonly states = new Map<string, JobState>();
  private forced: { adoptedJobId?: string; error?: Error }[] = [];
  private stateFailures: Error[] = [];
  private next = 1;

  /** What jobState answers for `jobId` from now on; undefined makes the job unknown to the service. */
  setJobState(jobId: string, state: JobState | undefined): this {
    if (state === undefined) this.states.delete(jobId);
    else this.states.set(jobId, state);
    return this;
  }

  /** The next jobState call fails with `error` (the job service is unreachable). */
  failNextJobState(error: Error = new Error('injected jobState failure')): this {
    this.stateFailures.push(error);
    return this;
  }

  async jobState(jobId: string): Promise<JobState | undefined> {
    await tick();
    this.stateQueries.push(jobId);
    const failure = this.stateFailures.shift();
    if (failure) throw failure;
    return this.states.get(jobId);
  }

  constructor(private readonly journal?: string[]) {}

  /** The next launch answers that an active job of that name existed (adopted). */
  answerAdopted(jobId = 'job-adopted'): this {
    this.forced.push({ adoptedJobId: jobId });
    return this;
  }

  failNext(error: Error = new Error('injected launch failure')): this {
    this.forced.push({ error });
    return this;
  }

  async launch(request: LaunchRequest): Promise<LaunchedJob> {
    await tick();
    this.requests.push(structuredClone(request));
    this.journal?.push('launch');
    const forced = this.forced.shift();
    if (forced?.error) throw forced.error;
    if (forced?.adoptedJobId) {
      this.active.set(request.jobName, forced.adoptedJobId);
      if (!this.states.has(forced.adoptedJobId)) this.states.set(forced.adoptedJobId, 'JOB_STATE_RUNNING');
      return { jobId: forced.adoptedJobId, jobName: request.jobName, adopted: true };
    }
    const existing = this.active.get(request.jobName);
    if (existing) return { jobId: existing, jobName: request.jobName, adopted: true };
    const jobId = `job-${this.next++}`;
    this.active.set(request.jobName, jobId);
    this.states.set(jobId, 'JOB_STATE_RUNNING');
    return { jobId, jobName: request.jobName, adopted: false };
  }
}

// ---------------------------------------------------------------------------------------------
// Clock and logger

export class FixedClock implements Clock {
  private current: Date;

  constructor(at: string | Date = '2026-01-15T10:22:00.000Z') {
    this.current = new Date(at);
  }

  now(): Date {
    return new Date(this.current.getTime());
  }

  set(at: string | Date): void {
    this.current = new Date(at);
  }

  advance(ms: number): void {
    this.current = new Date(this.current.getTime() + ms);
  }
}

export interface LogEntry {
  severity: Severity;
  message: string;
  fields: LogFields;
}

/** Records every entry (with the fields of the child loggers it went through); all children share one list. */
export class MemoryLogger implements Logger {
  constructor(
    readonly entries: LogEntry[] = [],
    private readonly fields: LogFields = {},
  ) {}

  log(severity: Severity, message: string, fields: LogFields = {}): void {
    this.entries.push({ severity, message, fields: { ...this.fields, ...fields } });
  }
  debug(message: string, fields?: LogFields): void { this.log('DEBUG', message, fields); }
  info(message: string, fields?: LogFields): void { this.log('INFO', message, fields); }
  warn(message: string, fields?: LogFields): void { this.log('WARNING', message, fields); }
  error(message: string, fields?: LogFields): void { this.log('ERROR', message, fields); }
  child(fields: LogFields): Logger {
    return new MemoryLogger(this.entries, { ...this.fields, ...fields });
  }

  at(severity: Severity): LogEntry[] {
    return this.entries.filter((e) => e.severity === severity);
  }
}

// ---------------------------------------------------------------------------------------------
// Events and HTTP

/** Data already encoded (for bad input): pubsubEvent puts it in `message.data` as it is. */
export class RawBase64 {
  constructor(readonly data: string) {}
}

export const rawBase64 = (data: string): RawBase64 => new RawBase64(data);

let eventCounter = 0;

/** A CloudEvent shaped like Pub/Sub's `google.cloud.pubsub.topic.v1.messagePublished`. */
export function pubsubEvent(
  payload: unknown,
  options: { messageId?: string; attributes?: Record<string, string>; topic?: string; publishTime?: string } = {},
): CloudEvent<unknown> {
  const n = ++eventCounter;
  const messageId = options.messageId ?? `pubsub-${n}`;
  const publishTime = options.publishTime ?? '2026-01-15T10:22:00.000Z';
  const topic = options.topic ?? 'ussd-operations-topic';
  const data = payload instanceof RawBase64 ? payload.data : Buffer.from(JSON.stringify(payload), 'utf8').toString('base64');
  return {
    specversion: '1.0',
    id: messageId,
    type: 'google.cloud.pubsub.topic.v1.messagePublished',
    source: `//pubsub.googleapis.com/projects/test-project/topics/${topic}`,
    time: publishTime,
    datacontenttype: 'application/json',
    data: {
      message: { data, messageId, publishTime, attributes: options.attributes ?? {} },
      subscription: `projects/test-project/subscriptions/${topic}-sub`,
    },
  };
}

/** The Pub/Sub event of a message as RecordingPublisher recorded it (to chain one function into the next). */
export function eventOf(message: PublishedMessage, messageId = message.messageId): CloudEvent<unknown> {
  return pubsubEvent(message.data, { messageId, attributes: message.attributes, topic: message.topic });
}

export const STATUS_CHANGED_TYPE = 'google.cloud.dataflow.job.v1beta3.statusChanged';

export interface JobPayload {
  id?: unknown;
  name?: unknown;
  currentState?: unknown;
  labels?: unknown;
  [key: string]: unknown;
}

/** A `google.cloud.dataflow.job.v1beta3.statusChanged` CloudEvent with `data.payload` = the Job. */
export function jobStatusEvent(job: JobPayload | undefined, options: { type?: string; id?: string } = {}): CloudEvent<unknown> {
  const n = ++eventCounter;
  return {
    specversion: '1.0',
    id: options.id ?? `dataflow-${n}`,
    type: options.type ?? STATUS_CHANGED_TYPE,
    source: '//dataflow.googleapis.com/projects/test-project/locations/europe-west1',
    subject: typeof job?.id === 'string' ? `jobs/${job.id}` : undefined,
    time: '2026-01-15T10:40:00.000Z',
    datacontenttype: 'application/json',
    data: job === undefined ? {} : { '@type': 'type.googleapis.com/google.events.cloud.dataflow.v1beta3.JobEventData', payload: job },
  };
}

export interface FakeResponse {
  statusCode?: number;
  body?: unknown;
  headers: Record<string, string>;
  ended: boolean;
}

/** A request/response pair for publishOps: the response records status, JSON body and headers. */
export function httpCall(method: string, body?: unknown): { req: Request; res: Response; response: FakeResponse } {
  const response: FakeResponse = { headers: {}, ended: false };
  const res = {
    status(code: number) {
      response.statusCode = code;
      return res;
    },
    json(value: unknown) {
      response.statusCode ??= 200;
      response.body = JSON.parse(JSON.stringify(value));
      response.ended = true;
      return res;
    },
    send(value?: unknown) {
      response.statusCode ??= 200;
      response.body = value;
      response.ended = true;
      return res;
    },
    end() {
      response.ended = true;
      return res;
    },
    set(name: string | Record<string, string>, value?: string) {
      if (typeof name === 'string') response.headers[name.toLowerCase()] = String(value);
      else for (const [k, v] of Object.entries(name)) response.headers[k.toLowerCase()] = v;
      return res;
    },
    setHeader(name: string, value: string) {
      response.headers[name.toLowerCase()] = value;
      return res;
    },
  };
  const req = { method, body, headers: {}, get: () => undefined };
  return { req: req as unknown as Request, res: res as unknown as Response, response };
}

// ---------------------------------------------------------------------------------------------
// Dependencies and batches

export const TEST_BATCH_ID = '20260115T102000Z-abc123';

/** The configuration of the tests: the defaults, with `env` on top. */
export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({ CONSOLIDATION_BACKEND: 'local', ...env });
}

export interface Fakes {
  config: Config;
  store: MemoryObjectStore;
  publisher: RecordingPublisher;
  warehouse: FakeWarehouse;
  launcher: FakeLauncher;
  clock: FixedClock;
  logger: MemoryLogger;
  journal: string[];
  deps: ChainDependencies;
}

/** A fresh set of fakes and the dependencies built from them. */
export function makeFakes(env: Record<string, string> = {}, batchSuffix = 'abc123'): Fakes {
  const journal: string[] = [];
  const config = testConfig(env);
  const store = new MemoryObjectStore();
  const publisher = new RecordingPublisher();
  const warehouse = new FakeWarehouse(journal);
  const launcher = new FakeLauncher(journal);
  const clock = new FixedClock();
  const logger = new MemoryLogger();
  const deps: ChainDependencies = { config, warehouse, store, publisher, launcher, clock, logger, batchSuffix: () => batchSuffix };
  return { config, store, publisher, warehouse, launcher, clock, logger, journal, deps };
}

export interface SeededBatch {
  batchId: string;
  manifest: Manifest;
  chunks: string[][];
}

/**
 * Writes a batch as publishOps and collectIds leave it: manifest, state in `status` (with
 * `state` on top) and, unless `storeChunks` is false, every chunk file (or those listed).
 */
export async function seedBatch(
  store: MemoryObjectStore,
  options: {
    batchId?: string;
    chunks?: string[][];
    status?: BatchStatus;
    state?: Partial<BatchState>;
    storeChunks?: boolean | number[];
    window?: { from: string; to: string };
  } = {},
): Promise<SeededBatch> {
  const batchId = options.batchId ?? TEST_BATCH_ID;
  const chunks = options.chunks ?? [['op-a1', 'op-a2'], ['op-b1', 'op-b2'], ['op-c1']];
  const window = options.window ?? { from: '2026-01-15T09:45:00.000Z', to: '2026-01-15T10:20:00.000Z' };
  const manifest: Manifest = {
    batchId,
    window,
    chunkCount: chunks.length,
    idCount: chunks.flat().length,
    chunkSize: Math.max(...chunks.map((c) => c.length)),
    rejected: { missingOperationId: 0, missingSourceTimestamp: 0 },
    createdAt: '2026-01-15T10:22:00.000Z',
  };
  store.put(paths.manifest(batchId), JSON.stringify(manifest, null, 2));
  const at = '2026-01-15T10:22:00.000Z';
  const status = options.status ?? 'SEALED';
  const state: BatchState = {
    batchId,
    status,
    attempt: status === 'SEALED' || status === 'COLLECTED' ? 0 : 1,
    updatedAt: at,
    history: [{ status: 'SEALED', at }, ...(status === 'SEALED' ? [] : [{ status, at }])],
    ...options.state,
  };
  store.put(paths.state(batchId), JSON.stringify(state, null, 2));
  const toStore = options.storeChunks === false ? [] : Array.isArray(options.storeChunks) ? options.storeChunks : chunks.map((_, n) => n);
  for (const n of toStore) store.put(paths.chunk(batchId, n), chunkFile(chunks[n]));
  return { batchId, manifest, chunks };
}

/** A chunk file as collectIds writes it: one {"operation_id": ...} JSON line per ID. */
export function chunkFile(ids: string[]): string {
  return ids.map((id) => JSON.stringify({ operation_id: id })).join('\n') + '\n';
}

export function stateOf(store: MemoryObjectStore, batchId: string = TEST_BATCH_ID): BatchState | undefined {
  return store.getJson<BatchState>(paths.state(batchId));
}
